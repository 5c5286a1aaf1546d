"""Name keys: every common spelling of a name shares a key with it; other names do not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.persons.names import name_words, skeleton, tokens, word_keys


def same_name(left: str, right: str) -> bool:
    """Every word of the shorter name shares a key with some word of the other."""
    left_words, right_words = name_words(left), name_words(right)
    shorter, longer = sorted((left_words, right_words), key=len)
    return bool(shorter) and all(
        any(set(word) & set(other) for other in longer) for word in shorter
    )


SAME_NAME = [
    ("Ціхамірскі", "Тихомирский", "Tsikhamirski", "Tikhomirsky", "Tikhomirskiy"),
    ("Каваленка", "Коваленко", "Kavalenka", "Kovalenko"),
    ("Дзмітрый", "Дмитрий", "Dzmitry", "Dmitriy", "Dmitrij", "Dmitrijus"),
    ("Łabanowicz", "Лабановіч", "Лобанович", "Labanovich"),
    # The soft sign and apostrophes are part of the word.
    ("Ольга Ковальчук", "Olga Kovalchuk", "Olha Kowalczuk", "Вольга Кавальчук"),
    ("Дарья", "Дар'я", "Daria", "Darya", "Dar'ja", "Darʹâ"),
    # Г as h or g.
    ("Ігар", "Игорь", "Ihar", "Igor"),
    ("Ганна", "Hanna", "Ganna"),
    ("Гомель", "Homiel", "Gomel", "Homel"),
    # Belarusian я where Russian writes е.
    ("Бяляцкі", "Беляцкий", "Bialiatski", "Belyatsky", "Bialiacki"),
    ("Сяргей", "Сергей", "Siarhei", "Sergey", "Sergej", "Siergiej", "Sergejus"),
    # Polish, German, Lithuanian and French spellings; ch read as х or ш.
    ("Ціханоўскі", "Тихановский", "Tichanowski", "Cichanouski", "Tikhanovsky", "Tichanovskis"),
    (
        "Ціханоўская",
        "Тихановская",
        "Tichanowskaja",
        "Tsikhanouskaya",
        "Cichanouska",
        "Tikhanovskaïa",
    ),
    ("Калеснікава", "Колесникова", "Kalesnikawa", "Kolesnikova"),
    ("Щукин", "Schtschukin", "Shchukin", "Szczukin", "Chtchoukine", "Ŝukin"),
    ("Зайцев", "Zaitsev", "Saizew", "Zajcew"),
    # Ё as е, yo, io or jo; й, ы and і as i; ў as u, v or w.
    ("Пётр", "Петр", "Pyotr", "Piotr", "Pjotr", "Pëtr"),
    ("Юрый", "Юрий", "Yury", "Iouri", "Jurij", "Yuriy"),
    ("Іваноў", "Иванов", "Ivanou", "Iwanow", "Ivanovas", "Ivanow"),
    # Given names with a form of their own in each language.
    ("Алесь", "Александр", "Aliaksandr", "Alexander"),
    ("Янка", "Иван", "Ivan"),
    ("Уладзімір", "Владимир", "Uladzimir", "Vladimir", "Wladimir"),
]


@pytest.mark.parametrize("spellings", SAME_NAME, ids=lambda s: s[0])
def test_every_common_spelling_of_a_name_shares_a_key(spellings: tuple[str, ...]) -> None:
    first = spellings[0]
    missed = [other for other in spellings[1:] if not same_name(first, other)]
    assert not missed, {s: name_words(s) for s in (first, *missed)}


DIFFERENT = [
    ("Іваноў", "Тихомирский"),
    ("Каваленка", "Kavaliou"),
    ("Аляксандр", "Аляксей"),
    ("Ціханоўскі", "Ціханоўская"),
    ("Ковальчук", "Коваленко"),
    ("Марына", "Марыя"),
    ("Сакалоў", "Сакалоўскі"),
]


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_names_share_no_key(left: str, right: str) -> None:
    assert not same_name(left, right), (name_words(left), name_words(right))


def test_a_cyrillic_word_has_one_key_and_a_latin_word_one_for_each_reading() -> None:
    assert word_keys("Тихановский") == ("tihanavski",)
    # ch as ч (English), х (Polish, German) or ш (French).
    assert set(word_keys("Tichanowski")) == {"ticanavski", "tihanavski", "tisanavski"}


def test_the_main_key_has_lowercase_latin_words_and_single_spaces() -> None:
    assert skeleton("  Алесь   ЗАВАЛЕЦКІ-Дубовік!! ") == "ales savalecki dubavik"


def test_tokens_list_every_key_once_with_the_given_name_group() -> None:
    assert tokens("Алесь Алесь") == ["ales", "=aleksandr"]


cyrillic_and_latin = st.text(
    alphabet=st.sampled_from(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіўАБВГДЕЖЗІЎЦЧШ"
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ -'"
    ),
    max_size=40,
)


@given(cyrillic_and_latin)
def test_keys_ignore_letter_case(name: str) -> None:
    assert tokens(name.upper()) == tokens(name.lower())


@given(st.text(max_size=60))
def test_keys_of_any_text_are_plain_ascii_words(name: str) -> None:
    key = skeleton(name)
    assert all(c == " " or "a" <= c <= "z" for c in key)
    assert "  " not in key
    assert key == key.strip()
    for token in tokens(name):
        assert token
        assert " " not in token
        assert token.lstrip("=").isascii()
