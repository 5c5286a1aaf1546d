"""The evaluation set of name spellings: `python -m tests.persons.name_pairs.generate`
writes pairs.csv next to this file (a test checks that the file is what this writes).

Every person is invented: a first name from the seed vocabulary and a surname built from
invented stems and common endings, each in its Belarusian and its Russian form. Each
person is then spelled the ways intake meets them:

- Cyrillic, Belarusian or Russian;
- Belarusian romanisations: the national system of 2007, BGN/PCGN, passport practice;
- Russian romanisations: ICAO Doc 9303 (passports since 2013), GOST 7.79 / ISO 9,
  BGN/PCGN, English-language media;
- Polish, German (Duden), Lithuanian and French practice.

A `same` row is two spellings of one person. A `different` row is two persons with close
names: namesakes who share the surname, surnames a letter or an ending apart, a woman
and a man of one family. Birth years go with each side: a `same` row may lack one, a
`different` row has its own person's.
"""

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

from app.seed import vocabulary

OUTPUT = Path(__file__).with_name("pairs.csv")
FIELDS = (
    "kind",
    "rule",
    "left_person",
    "left",
    "left_system",
    "left_birth_year",
    "right_person",
    "right",
    "right_system",
    "right_birth_year",
)

VOWELS = set("аеёиоуыэюяіАЕЁИОУЫЭЮЯІ")
IOTATED = {"е", "ё", "ю", "я"}

# letter → (word start or after a vowel, ь or ъ; after a consonant)
Table = dict[str, tuple[str, str] | str]

BY_NATIONAL_2007: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "h",
    "ґ": "g",
    "д": "d",
    "е": ("je", "ie"),
    "ё": ("jo", "io"),
    "ж": "ž",
    "з": "z",
    "і": "i",
    "й": "j",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ў": "ŭ",
    "ф": "f",
    "х": "ch",
    "ц": "c",
    "ч": "č",
    "ш": "š",
    "ы": "y",
    "ь": "ʹ",
    "э": "e",
    "ю": ("ju", "iu"),
    "я": ("ja", "ia"),
    "'": "",
}
BY_BGN_PCGN: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "h",
    "ґ": "g",
    "д": "d",
    "е": ("ye", "ye"),
    "ё": ("yo", "yo"),
    "ж": "zh",
    "з": "z",
    "і": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ў": "w",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "ы": "y",
    "ь": "'",
    "э": "e",
    "ю": ("yu", "yu"),
    "я": ("ya", "ya"),
    "'": "",
}
BY_PASSPORT: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "h",
    "ґ": "g",
    "д": "d",
    "е": ("ye", "ie"),
    "ё": ("yo", "io"),
    "ж": "zh",
    "з": "z",
    "і": "i",
    "й": "i",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ў": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": ("yu", "iu"),
    "я": ("ya", "ia"),
    "'": "",
}
PL_LACINKA: Table = {
    "а": "a",
    "б": "b",
    "в": "w",
    "г": "h",
    "ґ": "g",
    "д": "d",
    "е": ("je", "ie"),
    "ё": ("jo", "io"),
    "ж": "ż",
    "з": "z",
    "і": "i",
    "й": "j",
    "к": "k",
    "л": "ł",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ў": "u",
    "ф": "f",
    "х": "ch",
    "ц": "c",
    "ч": "cz",
    "ш": "sz",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": ("ju", "iu"),
    "я": ("ja", "ia"),
    "'": "",
}
RU_ICAO: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "e",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "i",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "ie",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "iu",
    "я": "ia",
}
RU_GOST_779: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "ë",
    "ж": "ž",
    "з": "z",
    "и": "i",
    "й": "j",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "c",
    "ч": "č",
    "ш": "š",
    "щ": "ŝ",
    "ъ": "ʺ",
    "ы": "y",
    "ь": "ʹ",
    "э": "è",
    "ю": "û",
    "я": "â",
}
RU_BGN_PCGN: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": ("ye", "e"),
    "ё": ("yë", "ë"),
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "ʺ",
    "ы": "y",
    "ь": "ʹ",
    "э": "e",
    "ю": "yu",
    "я": "ya",
}
RU_MEDIA: Table = {
    **{k: v for k, v in RU_BGN_PCGN.items()},
    "ё": ("yo", "yo"),
    "ь": "",
    "ъ": "",
    "е": ("ye", "e"),
}
PL: Table = {
    "а": "a",
    "б": "b",
    "в": "w",
    "г": "g",
    "д": "d",
    "е": ("je", "ie"),
    "ё": ("jo", "io"),
    "ж": "ż",
    "з": "z",
    "и": "i",
    "й": "j",
    "к": "k",
    "л": "ł",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "ch",
    "ц": "c",
    "ч": "cz",
    "ш": "sz",
    "щ": "szcz",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": ("ju", "iu"),
    "я": ("ja", "ia"),
}
DE: Table = {
    "а": "a",
    "б": "b",
    "в": "w",
    "г": "g",
    "д": "d",
    "е": ("je", "e"),
    "ё": ("jo", "jo"),
    "ж": "sch",
    "з": "s",
    "и": "i",
    "й": "j",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "ch",
    "ц": "z",
    "ч": "tsch",
    "ш": "sch",
    "щ": "schtsch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": ("ju", "ju"),
    "я": ("ja", "ja"),
}
LT: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": ("je", "e"),
    "ё": ("jo", "io"),
    "ж": "ž",
    "з": "z",
    "и": "i",
    "й": "j",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "ch",
    "ц": "c",
    "ч": "č",
    "ш": "š",
    "щ": "šč",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": ("ju", "iu"),
    "я": ("ja", "ia"),
}
FR: Table = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": ("ie", "e"),
    "ё": ("io", "io"),
    "ж": "j",
    "з": "z",
    "и": "i",
    "й": "ï",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "ou",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "tch",
    "ш": "ch",
    "щ": "chtch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": ("iou", "iou"),
    "я": ("ia", "ia"),
}


@dataclass(frozen=True)
class System:
    name: str
    source: str  # "be" or "ru": which Cyrillic form the system spells
    table: Table


SYSTEMS = (
    System("be_cyrillic", "be", {}),
    System("ru_cyrillic", "ru", {}),
    System("be_national_2007", "be", BY_NATIONAL_2007),
    System("be_bgn_pcgn", "be", BY_BGN_PCGN),
    System("be_passport", "be", BY_PASSPORT),
    System("be_polish_lacinka", "be", PL_LACINKA),
    System("ru_icao_9303", "ru", RU_ICAO),
    System("ru_gost_7_79", "ru", RU_GOST_779),
    System("ru_bgn_pcgn", "ru", RU_BGN_PCGN),
    System("ru_english_media", "ru", RU_MEDIA),
    System("ru_polish", "ru", PL),
    System("ru_german_duden", "ru", DE),
    System("ru_lithuanian", "ru", LT),
    System("ru_french", "ru", FR),
)

# Ending conventions beyond the letter tables.
ENDINGS = {
    "ru_english_media": ((r"ский$", "sky"), (r"ий$", "y"), (r"ый$", "y")),
    "ru_icao_9303": ((r"ий$", "ii"), (r"ый$", "yi")),
    "ru_german_duden": ((r"ский$", "ski"), (r"ий$", "i"), (r"ая$", "aja")),
    "ru_polish": ((r"ский$", "ski"), (r"ий$", "ij"), (r"ая$", "aja")),
    "ru_french": ((r"ский$", "ski"), (r"ий$", "i"), (r"ин$", "ine"), (r"ая$", "aïa")),
    "be_polish_lacinka": ((r"ская$", "ska"),),
}


def _lithuanian_ending(word: str, *, male: bool) -> str:
    """Lithuanian practice adds its own endings to men's names."""
    if not male:
        return word
    if word.endswith("ij"):
        return word[:-2] + "ijus"
    if word.endswith(("ej", "aj")):
        return word + "us"
    if word.endswith("skij"):
        return word[:-4] + "skis"
    if word.endswith("uk"):
        return word + "as"
    if word[-1] not in "aeiouy":
        return word + "as"
    return word


def romanise(cyrillic: str, system: System, *, male: bool) -> str:
    if not system.table:
        return cyrillic
    out_words = []
    for word in cyrillic.split():
        for pattern, replacement in ENDINGS.get(system.name, ()):
            match = re.search(pattern, word)
            if match:
                head = romanise(word[: match.start()], system, male=male) if match.start() else ""
                out_words.append(head + replacement)
                break
        else:
            out_words.append(_letters(word, system.table))
    if system.name == "ru_lithuanian":
        out_words = [_lithuanian_ending(w, male=male) for w in out_words]
    return " ".join(out_words)


def _letters(word: str, table: Table) -> str:
    out = []
    previous = ""
    for char in word:
        lower = char.lower()
        spelled = table.get(lower, lower)
        if isinstance(spelled, tuple):
            at_start = previous == "" or previous in VOWELS or previous in "ьъ'"
            spelled = spelled[0] if at_start else spelled[1]
        if char.isupper() and spelled:
            spelled = spelled[0].upper() + spelled[1:]
        out.append(spelled)
        previous = lower
    return "".join(out)


@dataclass(frozen=True)
class Person:
    male: bool
    first: tuple[str, str]  # (be, ru)
    surname: tuple[str, str]
    birth_year: int

    def cyrillic(self, source: str) -> tuple[str, str]:
        index = 0 if source == "be" else 1
        return self.first[index], self.surname[index]


def _surname(
    rng: random.Random, *, male: bool, stem: int | None = None, ending: int | None = None
) -> tuple[str, str]:
    be_stem, ru_stem = vocabulary.SURNAME_STEMS[
        stem if stem is not None else rng.randrange(len(vocabulary.SURNAME_STEMS))
    ]
    be_m, be_f, ru_m, ru_f = vocabulary.SURNAME_ENDINGS[
        ending if ending is not None else rng.randrange(len(vocabulary.SURNAME_ENDINGS))
    ]
    return (be_stem + (be_m if male else be_f), ru_stem + (ru_m if male else ru_f))


def _person(rng: random.Random) -> Person:
    male = rng.random() < 0.6
    first = rng.choice(vocabulary.MALE_FIRST if male else vocabulary.FEMALE_FIRST)
    return Person(male, first, _surname(rng, male=male), rng.randrange(1950, 2005))


def spelling(person: Person, system: System, *, order: str) -> str:
    first, surname = person.cyrillic(system.source)
    cyrillic = {
        "first last": f"{first} {surname}",
        "last first": f"{surname} {first}",
        "last": surname,
    }[order]
    return romanise(cyrillic, system, male=person.male)


def rows(seed: int = 2026, persons: int = 240) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    # No two persons of the set share a name in either language: namesakes are real, but
    # a name that two people bear cannot say which of them a spelling means.
    people: list[Person] = []
    taken: set[tuple[str, str]] = set()
    while len(people) < persons:
        candidate = _person(rng)
        if {candidate.cyrillic("be"), candidate.cyrillic("ru")} & taken:
            continue
        taken |= {candidate.cyrillic("be"), candidate.cyrillic("ru")}
        people.append(candidate)
    for number, person in enumerate(people):
        # Two pairs a person: each side a spelling in a system drawn at random.
        for _ in range(2):
            left, right = rng.sample(SYSTEMS, 2)
            order = rng.choices(["first last", "last first", "last"], [6, 2, 1])[0]
            left_value = spelling(person, left, order="first last")
            right_value = spelling(person, right, order=order)
            if (left_value, right_value) in seen:
                continue
            seen.add((left_value, right_value))
            out.append(
                {
                    "kind": "same",
                    "rule": f"{left.name} / {right.name}",
                    "left_person": number,
                    "right_person": number,
                    "left": left_value,
                    "left_system": left.name,
                    "left_birth_year": person.birth_year,
                    "right": right_value,
                    "right_system": right.name,
                    "right_birth_year": person.birth_year if rng.random() < 0.7 else "",
                }
            )
    for number, person in enumerate(people[: persons // 2]):
        rule = rng.choice(["namesake", "surname_stem", "surname_ending", "family"])
        if rule == "namesake":
            # Same surname, another first name of the same sex.
            pool = vocabulary.MALE_FIRST if person.male else vocabulary.FEMALE_FIRST
            first = rng.choice([f for f in pool if f != person.first and f[1] != person.first[1]])
            other = Person(person.male, first, person.surname, rng.randrange(1950, 2005))
        elif rule == "surname_stem":
            other = Person(
                person.male,
                person.first,
                _surname(rng, male=person.male),
                rng.randrange(1950, 2005),
            )
        elif rule == "surname_ending":
            stem = next(
                i
                for i, s in enumerate(vocabulary.SURNAME_STEMS)
                if person.surname[0].startswith(s[0])
            )
            endings = [
                i
                for i, e in enumerate(vocabulary.SURNAME_ENDINGS)
                if not person.surname[0].endswith(e[0 if person.male else 1])
            ]
            other = Person(
                person.male,
                person.first,
                _surname(rng, male=person.male, stem=stem, ending=rng.choice(endings)),
                rng.randrange(1950, 2005),
            )
        else:
            # A relative of the other sex: one family name in its male and female forms.
            stem = next(
                i
                for i, s in enumerate(vocabulary.SURNAME_STEMS)
                if person.surname[0].startswith(s[0])
            )
            ending = next(
                i
                for i, e in enumerate(vocabulary.SURNAME_ENDINGS)
                if person.surname[0].endswith(e[0 if person.male else 1])
            )
            male = not person.male
            first = rng.choice(vocabulary.MALE_FIRST if male else vocabulary.FEMALE_FIRST)
            other = Person(
                male,
                first,
                _surname(rng, male=male, stem=stem, ending=ending),
                rng.randrange(1950, 2005),
            )
        if {other.cyrillic("be"), other.cyrillic("ru")} & taken:
            continue
        taken |= {other.cyrillic("be"), other.cyrillic("ru")}
        left, right = rng.sample(SYSTEMS, 2)
        out.append(
            {
                "kind": "different",
                "rule": rule,
                "left_person": number,
                "right_person": persons + number,
                "left": spelling(person, left, order="first last"),
                "left_system": left.name,
                "left_birth_year": person.birth_year,
                "right": spelling(other, right, order="first last"),
                "right_system": right.name,
                "right_birth_year": other.birth_year,
            }
        )
    return out


def write(path: Path = OUTPUT) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows())


def read(path: Path = OUTPUT) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


if __name__ == "__main__":
    write()
