"""What a new password must not be (NIST SP 800-63B §3.1.1.2): at least 12 characters (the
input schema), and none of: the username, a repetition or a sequence, or a password that
is common, breached or otherwise easy to guess.

Guessability is judged by zxcvbn, which bundles the 30,000 most frequent passwords of
public breach corpora with dictionaries of words and names, and also recognises keyboard
patterns, dates and l33t spellings. The rules before it are checked first so that the
usual mistakes get a plain reason. No composition rules (NIST advises against them).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from app.core.errors import UnprocessableInput

MIN_DISTINCT_CHARACTERS = 5
# zxcvbn's scale: 3 is "safely unguessable: moderate protection from an offline attack on
# a slow hash" (fewer than 10^10 guesses is below it).
MIN_GUESSABILITY_SCORE = 3
# zxcvbn refuses longer input, and its matching is quadratic; the rules above it see the
# whole password.
GUESSABILITY_PREFIX = 72
# Words an attacker would try first against this service, besides the username.
SERVICE_WORDS = ("habeas",)


@dataclass(frozen=True)
class PasswordRule:
    code: str
    reason: str
    broken_by: Callable[[str, str], bool]


def _contains_username(password: str, username: str) -> bool:
    return username.casefold() in password.casefold()


def _repetitive(password: str, username: str) -> bool:
    folded = password.casefold()
    repeated_unit = re.fullmatch(r"(.+?)\1+", folded, flags=re.DOTALL) is not None
    return repeated_unit or len(set(folded)) < MIN_DISTINCT_CHARACTERS


def _step(a: str, b: str) -> int:
    """+1 or -1 between neighbours of a sequence (digits wrap: 9 then 0), else 0."""
    if a.isdigit() and b.isdigit():
        return {1: 1, 9: -1}.get((int(b) - int(a)) % 10, 0)
    difference = ord(b) - ord(a)
    return difference if abs(difference) == 1 else 0


def _sequential(password: str, username: str) -> bool:
    steps = {_step(a, b) for a, b in pairwise(password.casefold())}
    return steps in ({1}, {-1})


RULES: tuple[PasswordRule, ...] = (
    PasswordRule("password_contains_username", "It contains the username.", _contains_username),
    PasswordRule(
        "password_repetitive",
        'It repeats a character or a short pattern (like "aaaa…" or "abcabc…"), or uses '
        f"fewer than {MIN_DISTINCT_CHARACTERS} different characters.",
        _repetitive,
    ),
    PasswordRule(
        "password_sequential", 'It is a sequence (like "abcdef…" or "123456…").', _sequential
    ),
)


@dataclass(frozen=True)
class PasswordProblem:
    code: str
    reason: str


def problems_with(password: str, username: str) -> list[PasswordProblem]:
    """Why the password is refused (empty when it is accepted). Never the password itself.

    CPU-bound for tens of milliseconds on long input: call it off the event loop."""
    broken = [
        PasswordProblem(rule.code, rule.reason)
        for rule in RULES
        if rule.broken_by(password, username)
    ]
    if broken:
        return broken
    # Imported here: its dictionaries cost every server process ~14 MB, and only the
    # rare password change needs them.
    from zxcvbn import zxcvbn

    estimate = zxcvbn(password[:GUESSABILITY_PREFIX], user_inputs=[username, *SERVICE_WORDS])
    if estimate["score"] >= MIN_GUESSABILITY_SCORE:
        return []
    feedback = estimate["feedback"]
    hints = " ".join([feedback["warning"], *feedback["suggestions"]]).strip()
    reason = "It is a common or breached password, or too easy to guess."
    return [PasswordProblem("password_guessable", f"{reason} {hints}".strip())]


def check_new_password(password: str, username: str) -> None:
    """Refuse a password that breaks a rule, saying which rules (422)."""
    found = problems_with(password, username)
    if found:
        raise UnprocessableInput(
            "The password is not accepted: " + " ".join(p.reason for p in found),
            errors=[{"loc": ["body", "password"], "msg": p.reason, "type": p.code} for p in found],
        )
