"""Name skeletons: one romanised key for every spelling of a name, in any script.

Belarusian and Russian spellings of one surname differ in regular ways (ці/ти, дзі/ди,
ў/в, akanne o/a) and romanisations add their own (ts/c, kh/h/x, -sky/-ski/-skiy).
anyascii romanises every script; the substitutions below then fold those differences,
so Ціхамірскі, Тихомирский, Tsikhamirski and Tikhomirsky share one skeleton. The
skeleton is for matching only and is never shown.
"""

import re
import unicodedata

from anyascii import anyascii

# Order matters: longer patterns first, vowel folding last.
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    ("shch", "s"),
    ("sch", "s"),
    ("sz", "s"),
    ("sh", "s"),
    ("zh", "z"),
    ("cz", "c"),
    ("ch", "c"),
    ("kh", "h"),
    ("ts", "c"),
    ("tz", "c"),
    ("x", "h"),
    ("w", "v"),
    ("dz", "d"),
    ("j", "i"),
    ("y", "i"),
    ("ie", "e"),
    ("au", "av"),
    ("ou", "ov"),
    ("eu", "ev"),
    ("ci", "ti"),
    ("o", "a"),
)
_NOT_LETTER = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r" +")
_DOUBLED = re.compile(r"([a-z])\1+")


def _fold(text: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        text = text.replace(pattern, replacement)
    return _DOUBLED.sub(r"\1", text)


def tokens(key: str) -> list[str]:
    """The distinct words of a skeleton, in order."""
    return list(dict.fromkeys(key.split()))


def skeleton(name: str) -> str:
    """The matching key of a name: lower-case Latin letters and single spaces."""
    # Composed and decomposed spellings are one name (the API's input types already give
    # NFC; the seed loader and other callers may not).
    text = _NOT_LETTER.sub(" ", anyascii(unicodedata.normalize("NFC", name)).lower())
    text = _SPACES.sub(" ", text).strip()
    folded = _fold(text)
    # Folding can expose a new pattern (a collapsed double, say); repeat until stable.
    while (again := _fold(folded)) != folded:
        folded = again
    return folded
