"""Name keys: every common spelling of a name, in any script, shares a key with it.

Intake writes one person's name in Belarusian and Russian Cyrillic and in the
romanisations of Belarus (national 2007, passports, BGN/PCGN), Russia (ICAO passports,
GOST 7.79 / ISO 9), Poland, Germany, Lithuania, France and English-language media. Those
spellings differ in regular ways, and the rules below fold them together:

- Belarusian against Russian: akanne (о written а), яканне (е written я: Бяляцкі,
  Беляцкий), ці / ти and дзі / ди, ў / в, і / и, э / е, and given names that have a form of
  their own in each language (Алесь / Александр, Янка / Иван).
- Romanisations: one sound in several spellings (ч: ch, cz, tsch, tch, č; ш: sh, sz, sch,
  ch, š; х: kh, ch, h, x; г: h, g; й, ы, і: i, y, j; я: ya, ia, ja, â), the soft sign and
  apostrophes written or dropped, ё as e, yo, io or jo.
- Endings: -ский / -скі as -ski, -sky, -skiy, -skij, -skis; -ская as -skaya, -skaja,
  -ska; Lithuanian -as, -is, -jus added to men's names; French -ïa.

anyascii romanises every script. A Cyrillic or diacritic spelling then has one key. A
plain Latin spelling can be read in more than one language ("ch" is ч in English, х in
Polish and German, ш in French), so each of its readings gives a key of its own, and
two words match when any of their keys agree. The keys are for matching only and are
never shown.
"""

import re
import unicodedata
from functools import cache, lru_cache
from itertools import product

from anyascii import anyascii

# Cyrillic letters whose anyascii spelling would hide the fold below; the rest are left
# to anyascii. The soft and hard signs are dropped: "Ковальчук" is one word.
_CYRILLIC: dict[str, str] = {
    "г": "h",
    "ґ": "h",
    "х": "h",
    "ж": "s",
    "з": "s",
    "ш": "s",
    "щ": "s",
    "ц": "c",
    "ч": "c",
    "й": "i",
    "ы": "i",
    "і": "i",
    "ї": "i",
    "ў": "v",
    "е": "e",
    "ё": "e",
    "э": "e",
    "є": "e",
    "я": "ia",
    "ю": "iu",
    "ь": "",
    "ъ": "",
}
_CYRILLIC_TABLE = str.maketrans(_CYRILLIC | {k.upper(): v for k, v in _CYRILLIC.items()})
_CYRILLIC_LETTER = re.compile(r"[\u0400-\u04ff]")
# ISO 9 / GOST 7.79 letters whose anyascii spelling loses the iotation or the sound.
_ISO_9 = str.maketrans(
    {"â": "ia", "Â": "Ia", "û": "iu", "Û": "Iu", "ŝ": "shch", "Ŝ": "Shch", "ë": "io", "Ë": "Io"}
)

# Marks that some romanisations write for the soft sign or a hard sign: part of the word.
_WORD_MARKS = re.compile(r"['’ʼʹʺ`´\"]")
_NOT_LETTER = re.compile(r"[^a-z]+")

# Latin letter groups with one reading, longest first. Their results are written in
# capitals until the ambiguous letters are read, so that a "c" made from "ts" is not
# read again as k.
_LATIN_GROUPS: tuple[tuple[str, str], ...] = (
    ("schtsch", "S"),
    ("shtsh", "S"),
    ("shch", "S"),
    ("szcz", "S"),
    ("chtch", "S"),
    ("tsch", "C"),
    ("tsh", "C"),
    ("sch", "S"),
    ("tch", "C"),
    ("cz", "C"),
    ("sz", "S"),
    ("rz", "S"),
    ("zh", "S"),
    ("sh", "S"),
    ("kh", "H"),
    ("ts", "C"),
    ("tz", "C"),
    ("gue", "HE"),
    ("gui", "HI"),
)
# Single letters with one reading.
_LATIN_LETTERS = str.maketrans({"g": "h", "q": "k", "w": "v", "y": "i"})
# Latin letters with more than one reading: every reading is a key. "ch" is ч in
# English, х in Polish and German, ш in French; "x" is х in GOST 7.79 and ks in English;
# "c" is ц in Polish, Lithuanian and Belarusian Latin, k in English; "j" is й in most
# languages, ж in French; "ou" is у in French, оў in Belarusian romanisations; "z" is
# з in most languages, ц in German.
_LATIN_AMBIGUOUS = re.compile(r"ch|x|c|j|ou|z")
_READINGS: dict[str, tuple[str, ...]] = {
    "ch": ("C", "H", "S"),
    "x": ("KS", "H"),
    "c": ("C", "K"),
    "j": ("I", "S"),
    "ou": ("OV", "U"),
    "z": ("S", "C"),
}
# Spelling a word in every reading of its ambiguous letters is bounded: past this many
# ambiguous places, the rest take their first reading.
_MAX_AMBIGUOUS = 3

# Folds on the common key alphabet, in order.
_ENDINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Lithuanian endings added to men's names: Tichanovskis, Ivanovas, Sergejus.
    (re.compile(r"icius$"), "ic"),
    (re.compile(r"ius$"), "i"),
    (re.compile(r"iukas$"), "uk"),
    (re.compile(r"skis$"), "ski"),
    (re.compile(r"(?<=.[^aeiou])as$"), ""),
    # -ская, -skaya, -skaja, -skaïa, -ska; -ная, -naja, -na.
    (re.compile(r"aia$"), "a"),
    # French: Chtchoukine, Smirnoff.
    (re.compile(r"ine$"), "in"),
    (re.compile(r"(?<=[aeiu])f$"), "v"),
)
_VOWELS: tuple[tuple[str, str], ...] = (
    ("ia", "e"),
    ("ie", "e"),
    ("io", "e"),
    ("iu", "u"),
    ("o", "a"),
    ("au", "av"),
    ("eu", "ev"),
    # дз (Belarusian) and д (Russian): Дзмітрый, Дмитрий.
    ("ds", "d"),
    # ці against ти: Ціхамірскі, Тихомирский.
    ("ci", "ti"),
    # Belarusian а where Russian writes е after a hard ж, ш, ч, ц or р: Шастак, Шестак;
    # Стральцоў, Стрельцов.
    ("se", "sa"),
    ("ce", "ca"),
    ("re", "ra"),
)
_DOUBLED = re.compile(r"([a-z])\1+")


def _fold(word: str) -> str:
    """The key of one word already in the common alphabet (ambiguity resolved)."""
    previous = None
    while word != previous:
        previous = word
        word = _DOUBLED.sub(r"\1", word)
        for pattern, replacement in _ENDINGS:
            word = pattern.sub(replacement, word)
        for old, new in _VOWELS:
            word = word.replace(old, new)
    return word


def _latin_readings(word: str) -> list[str]:
    """The word spelled in each reading of its ambiguous letters."""
    for group, canonical in _LATIN_GROUPS:
        word = word.replace(group, canonical)
    parts = _LATIN_AMBIGUOUS.split(word)
    found = _LATIN_AMBIGUOUS.findall(word)
    choices = [
        _READINGS[group] if index < _MAX_AMBIGUOUS else _READINGS[group][:1]
        for index, group in enumerate(found)
    ]
    return [
        (parts[0] + "".join(c + p for c, p in zip(chosen, parts[1:], strict=True)))
        .translate(_LATIN_LETTERS)
        .lower()
        for chosen in product(*choices)
    ]


# Bounded: a server reads names for years, and every distinct word would stay otherwise.
@lru_cache(maxsize=65_536)
def word_keys(word: str) -> tuple[str, ...]:
    """Every key of one written word (a name may have several), the key of its most
    likely reading first; empty when the word has no letters."""
    word = unicodedata.normalize("NFC", word)
    cyrillic = _CYRILLIC_LETTER.search(word) is not None
    word = word.translate(_CYRILLIC_TABLE if cyrillic else _ISO_9)
    plain = _NOT_LETTER.sub("", anyascii(_WORD_MARKS.sub("", word)).lower())
    if not plain:
        return ()
    if cyrillic:
        return (_fold(plain),)
    keys = (_fold(reading) for reading in _latin_readings(plain))
    return tuple(dict.fromkeys(key for key in keys if key))


_WORD_SPLIT = re.compile(r"[\s\-‐‑–—,.;:/()]+")


def words(name: str) -> list[str]:
    """The written words of a name."""
    return [word for word in _WORD_SPLIT.split(name) if word]


def word_keys_with_name_forms(word: str) -> tuple[str, ...]:
    """The keys of one written word, with its given-name group's (see GIVEN_NAME_FORMS);
    empty when the word has no letters."""
    keys = word_keys(word)
    return _with_name_forms(keys) if keys else ()


def name_words(name: str) -> list[tuple[str, ...]]:
    """The keys of each word of a name, words without letters left out, given-name
    forms of one name joined (see GIVEN_NAME_FORMS)."""
    return [keys for word in words(name) if (keys := word_keys_with_name_forms(word))]


def skeleton(name: str) -> str:
    """The name's main key: each word's first key, single spaces. Trigram similarity on
    it catches what whole-word keys miss (a typo, a fragment)."""
    return " ".join(keys[0] for keys in name_words(name))


def tokens(name: str) -> list[str]:
    """Every key of every word of the name, distinct, in order: what a name is indexed
    by."""
    return list(dict.fromkeys(key for keys in name_words(name) for key in keys))


# A word key shorter than this is not matched with a letter wrong: too many are that close.
TYPO_MIN_LENGTH = 4


def typo_variants(key: str) -> tuple[str, ...]:
    """The key, and the key with each one letter left out: two keys a letter wrong, a
    letter more or less, or two neighbours swapped, share one of these (the deletion
    neighbourhood of SymSpell). A given-name group's key ("=…") and short keys have none."""
    if key.startswith("=") or len(key) < TYPO_MIN_LENGTH:
        return ()
    return tuple(dict.fromkeys([key, *(key[:i] + key[i + 1 :] for i in range(len(key)))]))


# Given names whose Belarusian and Russian forms are spelled apart beyond the rules
# above (or a short form used as the name); each group shares one extra key.
GIVEN_NAME_FORMS: tuple[tuple[str, ...], ...] = (
    ("Аляксандр", "Александр", "Алесь", "Alexander", "Alexandre"),
    ("Аляксей", "Алексей", "Alexei"),
    ("Дзмітрый", "Дмитрий", "Зміцер", "Дмітрый"),
    ("Янка", "Іван", "Иван", "Ян"),
    ("Яўген", "Евгений", "Jewgeni", "Eugene"),
    ("Яўгенія", "Евгения"),
    ("Уладзімір", "Владимир", "Уладзь"),
    ("Міхась", "Міхаіл", "Михаил", "Michał", "Michael"),
    ("Пятро", "Пётр", "Пятрусь", "Piotr", "Peter"),
    ("Ганна", "Анна", "Hanna", "Anna"),
    ("Алена", "Елена", "Алёна", "Helena"),
    ("Вольга", "Ольга", "Olga"),
    ("Кацярына", "Екатерина", "Katarzyna", "Katharina", "Catherine"),
    ("Тацяна", "Татьяна", "Таццяна"),
    ("Наталля", "Наталья", "Natalia"),
    ("Юрый", "Юрий", "Юрась", "Jerzy"),
    ("Мікалай", "Николай", "Mikołaj"),
    ("Кірыл", "Кирилл", "Cyril"),
    ("Васіль", "Василий", "Wasyl"),
    ("Язэп", "Иосиф", "Józef", "Joseph"),
    ("Андрэй", "Андрей", "Andrzej", "Andrew"),
    ("Сяргей", "Сергей", "Siarhiej"),
    ("Рыгор", "Григорий"),
    ("Ігар", "Игорь"),
    ("Павел", "Павел", "Paweł", "Paul"),
    ("Святлана", "Светлана"),
    ("Людміла", "Людмила"),
    ("Марыя", "Мария", "Maria", "Marie"),
)


@cache
def _name_form_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for forms in GIVEN_NAME_FORMS:
        group = "=" + word_keys(forms[1])[0]
        for form in forms:
            for key in word_keys(form):
                index.setdefault(key, group)
    return index


def _with_name_forms(keys: tuple[str, ...]) -> tuple[str, ...]:
    index = _name_form_index()
    groups = [index[key] for key in keys if key in index]
    return keys + tuple(dict.fromkeys(group for group in groups if group not in keys))
