"""Name skeletons: every spelling of one name shares a key; unrelated names do not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.persons.names import skeleton

SAME_NAME = [
    ("Ціхамірскі", "Тихомирский", "Tsikhamirski", "Tikhomirsky", "Tikhomirskiy"),
    ("Каваленка", "Коваленко", "Kavalenka", "Kovalenko"),
    ("Дзмітрый", "Дмитрий", "Dzmitry", "Dmitriy", "Dmitrij"),
    ("Łabanowicz", "Лабановіч", "Лобанович", "Labanovich"),
]


@pytest.mark.parametrize("spellings", SAME_NAME)
def test_variant_spellings_share_one_skeleton(spellings: tuple[str, ...]) -> None:
    assert len({skeleton(s) for s in spellings}) == 1, [skeleton(s) for s in spellings]


def test_unrelated_names_keep_different_skeletons() -> None:
    assert skeleton("Іваноў") != skeleton("Тихомирский")
    assert skeleton("Каваленка") != skeleton("Kavaliou")


def test_the_skeleton_has_only_lowercase_latin_letters_and_single_spaces() -> None:
    assert skeleton("  Алесь   ЗАВАЛЕЦКІ-Дубовік!! ") == "ales zavalecki dubavik"


cyrillic_and_latin = st.text(
    alphabet=st.sampled_from(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіўАБВГДЕЖЗІЎЦЧШ"
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ -'"
    ),
    max_size=40,
)


@given(cyrillic_and_latin)
def test_skeleton_is_stable_when_applied_again(name: str) -> None:
    once = skeleton(name)
    assert skeleton(once) == once


@given(cyrillic_and_latin)
def test_skeleton_ignores_letter_case(name: str) -> None:
    assert skeleton(name.upper()) == skeleton(name.lower())


@given(st.text(max_size=60))
def test_skeleton_of_any_text_is_plain_ascii(name: str) -> None:
    key = skeleton(name)
    assert all(c == " " or "a" <= c <= "z" for c in key)
    assert "  " not in key
    assert key == key.strip()
