"""Normalised keys: every spelling of a value gives one key, checked against plain oracles."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmrules import normalise

# -- tax ids: the check digits computed here by the published weights, independently


def inn10_check(body: str) -> str:
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return str(sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11 % 10)


def valid_inn10(body: str) -> str:
    return body + inn10_check(body)


def valid_inn12(body: str) -> str:
    first = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    second = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    d11 = str(sum(int(d) * w for d, w in zip(body, first, strict=True)) % 11 % 10)
    d12 = str(sum(int(d) * w for d, w in zip(body + d11, second, strict=True)) % 11 % 10)
    return body + d11 + d12


digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_a_company_inn_is_valid_exactly_when_its_check_digit_is_right(body: str) -> None:
    good = valid_inn10(body)
    assert normalise.inn(good) == good
    assert normalise.inn(f" {good[:4]} {good[4:]} ") == good  # spaces are not part of it
    for wrong in "0123456789":
        if wrong != good[-1]:
            assert normalise.inn(body + wrong) is None
            assert "check digit" in (normalise.inn_problem(body + wrong) or "")


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_a_person_inn_has_two_check_digits(body: str) -> None:
    good = valid_inn12(body)
    assert normalise.inn(good) == good
    broken = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert normalise.inn(broken) is None


@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.booleans())
def test_ogrn_and_ogrnip_check_digit(body: str, entrepreneur: bool) -> None:
    if entrepreneur:
        body += "12"
    modulus = 13 if entrepreneur else 11
    good = body + str(int(body) % modulus % 10)
    assert normalise.ogrn(good) == good
    assert normalise.ogrn(good[:-1] + str((int(good[-1]) + 1) % 10)) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [("123", "10 digits"), ("77070838931", "10 digits"), ("77O7083893", "10 digits"), ("", "")],
)
def test_an_inn_of_the_wrong_shape_says_what_an_inn_is(text: str, why: str) -> None:
    assert normalise.inn(text) is None
    assert why in (normalise.inn_problem(text) or "")


def test_known_tax_ids() -> None:
    assert normalise.inn("7707083893") == "7707083893"  # Sberbank
    assert normalise.ogrn("1027700132195") == "1027700132195"


# -- phones


def spellings(national: str) -> list[str]:
    """A Moscow number (10 national digits) as people write it."""
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return [
        f"+7{national}",
        f"+7 ({a}) {b}-{c}-{d}",
        f"8 ({a}) {b}-{c}-{d}",
        f"8{national}",
        f"7{national}",
        f"8 {a} {b} {c} {d}",
        f"+7-{a}-{b}{c}{d}",
        f"  +7 {a} {b}{c}{d} ",
    ]


@given(st.sampled_from(["495", "499", "916", "903", "812"]), st.integers(0, 9_999_999))
def test_every_way_of_writing_a_russian_number_is_one_e164_key(code: str, rest: int) -> None:
    national = f"{code}{rest:07}"
    keys = {normalise.phone(text, "RU") for text in spellings(national)}
    if national[3] in "01" and code in ("495", "499"):
        return  # not an allocated Moscow number: phonenumbers says invalid, consistently
    assert keys == {f"+7{national}"} or keys == {None}


@pytest.mark.parametrize("text", ["", "  ", "123", "not a phone", "+7 495"])
def test_text_that_is_no_phone_gives_no_key(text: str) -> None:
    assert normalise.phone(text, "RU") is None


# -- e-mail


@given(st.text(alphabet="abcdefghij.", min_size=1, max_size=12).filter(lambda s: s.strip(".")))
def test_gmail_ignores_dots_case_and_plus_tags(local: str) -> None:
    plain = local.replace(".", "")
    upper = "".join(c.upper() if i % 2 else c for i, c in enumerate(local))
    assert normalise.email(f"{upper}+crm@GMail.com") == f"{plain}@gmail.com"
    assert normalise.email(f"{plain}@googlemail.com") == f"{plain}@gmail.com"


def test_elsewhere_dots_and_plus_are_part_of_the_mailbox() -> None:
    assert normalise.email("Ivan.Petrov@Romashka.RU") == "ivan.petrov@romashka.ru"
    assert normalise.email("ivan+x@romashka.ru") == "ivan+x@romashka.ru"
    assert normalise.email("Иван <IVAN@romashka.ru>") == "ivan@romashka.ru"
    assert normalise.email("ivan+x@yandex.ru") == "ivan@yandex.ru"
    assert normalise.email("no address") is None
    assert normalise.email("@romashka.ru") is None


# -- names

FORMS = ["ООО", "ооо", "Общество с ограниченной ответственностью", "АО", "ЗАО", "ИП", "LLC"]
QUOTES = [("«", "»"), ('"', '"'), ("“", "”"), ("'", "'"), ("", "")]


@given(
    st.sampled_from(["Ромашка", "Рога и Копыта", "Северный Ветер", "Ёлка-Палка"]),
    st.sampled_from(FORMS),
    st.sampled_from(QUOTES),
    st.booleans(),
    st.booleans(),
)
def test_legal_form_quotes_order_and_case_do_not_change_a_name(
    name: str, form: str, quotes: tuple[str, str], form_last: bool, upper: bool
) -> None:
    quoted = f"{quotes[0]}{name}{quotes[1]}"
    text = f"{quoted} {form}" if form_last else f"{form} {quoted}"
    if upper:
        text = text.upper()
    assert normalise.name(text) == normalise.name(name)


def test_name_words_are_sorted_and_punctuation_dropped() -> None:
    assert normalise.name("Иванов Иван") == normalise.name("иван, ИВАНОВ") == "иван иванов"
    assert normalise.name("ООО «Ромашка»") == "ромашка"
    assert normalise.name("ООО") is None  # a legal form alone names nobody
    assert normalise.name("ОООМега") == "ооомега"  # a form inside a word stays


def test_names_that_differ_stay_different() -> None:
    rng = random.Random(7)
    words = ["Ромашка", "Лютик", "Василёк", "Мак", "Фиалка", "Астра"]
    names = {" ".join(rng.sample(words, 2)) for _ in range(50)}
    keys = {normalise.name(n) for n in names}
    assert len(keys) == len({frozenset(n.split()) for n in names})
