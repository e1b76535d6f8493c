"""Normalised keys for duplicate detection: phones, e-mails, Russian tax ids, company names.

Two spellings of one value give one key: ``8 (495) 123-45-67`` and
``+74951234567`` are ``+74951234567``; ``Ivan.Petrov+crm@GMail.com`` is
``ivanpetrov@gmail.com``; ``ООО «Ромашка»`` and ``Ромашка ООО`` are
``ромашка``. A value that is no phone, address or valid tax id gives no key
(None), so it never matches anything.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

import phonenumbers

#: Domains whose mailboxes ignore dots in the local part.
DOT_BLIND_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
#: Domains where ``name+tag@`` reaches ``name@``.
PLUS_TAG_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com",
        "yandex.ru", "ya.ru", "icloud.com", "me.com", "fastmail.com", "proton.me",
        "protonmail.com",
    }
)  # fmt: skip
#: One mailbox under two names.
DOMAIN_ALIASES = {"googlemail.com": "gmail.com", "ya.ru": "yandex.ru"}

#: Legal forms dropped from company names (lower case, ё as е), longest first where they nest.
LEGAL_FORMS = (
    "общество с ограниченной ответственностью",
    "публичное акционерное общество",
    "закрытое акционерное общество",
    "открытое акционерное общество",
    "непубличное акционерное общество",
    "акционерное общество",
    "индивидуальный предприниматель",
    "автономная некоммерческая организация",
    "некоммерческая организация",
    "ооо", "зао", "оао", "пао", "нао", "ао", "ип", "ано", "нко", "тоо", "чп", "гуп", "муп",
    "llc", "ltd", "inc", "corp", "gmbh", "ag", "plc", "co", "limited", "company",
)  # fmt: skip
_FORMS = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(f) for f in LEGAL_FORMS) + r")\.?(?!\w)")
_NOT_WORD = re.compile(r"[^\w]+")


def phone(text: str | None, region: str = "RU") -> str | None:
    """The number in E.164 (``+74951234567``), or None if it is not a valid phone number.

    ``region`` is the ISO country a number without ``+`` belongs to (``8 495 ...`` in RU).
    """
    if not text or not text.strip():
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(
    text: str | None,
    dot_blind: Collection[str] = DOT_BLIND_DOMAINS,
    plus_tags: Collection[str] = PLUS_TAG_DOMAINS,
) -> str | None:
    """The mailbox an address reaches, in lower case, or None if it is no address.

    Dots in the local part are dropped for ``dot_blind`` domains, a ``+tag``
    for ``plus_tags`` domains; elsewhere the local part is only lower-cased
    (almost every server treats it so).
    """
    if not text:
        return None
    address = text.strip()
    if "<" in address and address.endswith(">"):
        address = address[address.rindex("<") + 1 : -1]
    local, at, domain = address.strip().rpartition("@")
    if not (local and at and domain) or any(c.isspace() for c in address.strip()):
        return None
    local, domain = local.casefold(), domain.casefold().rstrip(".")
    if domain in plus_tags:
        local = local.split("+", 1)[0]
    if domain in dot_blind:
        local = local.replace(".", "")
    domain = DOMAIN_ALIASES.get(domain, domain)
    return f"{local}@{domain}" if local else None


def _digits(text: str | None) -> str:
    return "".join(c for c in (text or "") if not c.isspace() and c not in "-")


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def inn_problem(text: str | None) -> str | None:
    """Why ``text`` is not a Russian INN (10 digits for a company, 12 for a person), or None."""
    digits = _digits(text)
    if not digits.isdigit() or len(digits) not in (10, 12):
        return f"{text!r} is not an INN: an INN has 10 digits (a company) or 12 (a person)"
    if len(digits) == 10:
        ok = _weighted(digits, _INN10) == int(digits[9])
    else:
        ok = _weighted(digits, _INN12_1) == int(digits[10]) and _weighted(digits, _INN12_2) == int(
            digits[11]
        )
    return None if ok else f"{text!r} is not a valid INN: its check digit is wrong"


def ogrn_problem(text: str | None) -> str | None:
    """Why ``text`` is not an OGRN (13 digits) or OGRNIP (15 digits), or None."""
    digits = _digits(text)
    if not digits.isdigit() or len(digits) not in (13, 15):
        return f"{text!r} is not an OGRN: an OGRN has 13 digits (15 for an entrepreneur)"
    body, check = int(digits[:-1]), int(digits[-1])
    modulus = 11 if len(digits) == 13 else 13
    if body % modulus % 10 != check:
        return f"{text!r} is not a valid OGRN: its check digit is wrong"
    return None


def inn(text: str | None) -> str | None:
    """The INN's digits if it is a valid INN, else None."""
    return _digits(text) if text and inn_problem(text) is None else None


def ogrn(text: str | None) -> str | None:
    """The OGRN's digits if it is a valid OGRN or OGRNIP, else None."""
    return _digits(text) if text and ogrn_problem(text) is None else None


def name(text: str | None) -> str | None:
    """A company or person name as its words in order, without quotes, case or legal form.

    ``ООО «Ромашка»``, ``"Ромашка" ООО`` and ``ромашка`` are all ``ромашка``;
    ``Иванов Иван`` and ``Иван Иванов`` are one name (token sort).
    """
    if not text:
        return None
    folded = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    words = _NOT_WORD.sub(" ", _FORMS.sub(" ", _NOT_WORD.sub(" ", folded).replace("_", " ")))
    tokens = sorted(words.replace("_", " ").split())
    return " ".join(tokens) or None


__all__ = [
    "DOT_BLIND_DOMAINS",
    "LEGAL_FORMS",
    "PLUS_TAG_DOMAINS",
    "email",
    "inn",
    "inn_problem",
    "name",
    "ogrn",
    "ogrn_problem",
    "phone",
]
