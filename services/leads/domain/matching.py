"""Normalisation of what identifies a customer, and the match keys built from it (pure Python).

A lead or account is matched by any of its keys: the phone number in E.164 (``phonenumbers``,
default region CN), the e-mail address (``email-validator``, lower-cased, no DNS lookup), the
unified social credit code (``python-stdnum``'s ``cn.uscc``) and the company name normalised
for comparison (NFKC folds full-width characters to half-width, case and whitespace are
folded, punctuation dropped, and legal-form suffixes such as 有限公司 / 股份有限公司 /
Co., Ltd. / Inc. removed). Invalid input is an :class:`InvalidIdentifier` (a 422 problem).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum.cn import uscc as _uscc
from stdnum.exceptions import ValidationError as _StdnumError

from shared.domain import DomainError

DEFAULT_PHONE_REGION = "CN"


class InvalidIdentifier(DomainError):
    status = 422
    title = "Invalid customer identifier"


class MatchKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    USCC = "uscc"
    NAME = "name"


@dataclass(frozen=True, order=True, slots=True)
class MatchKey:
    kind: MatchKind
    value: str


def normalize_phone(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """``138 0013 8000``, ``+86 13800138000`` and ``8613800138000`` all give ``+8613800138000``."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """The whole address lower-cased (the local part too: no mail system we meet is case-sensitive)."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifier(f"{raw!r} is not a valid e-mail address: {exc}") from exc
    return result.normalized.lower()


def normalize_uscc(raw: str) -> str:
    """The 18-character unified social credit code, compact and upper-case, checksum verified."""
    try:
        return _uscc.validate(raw)
    except _StdnumError as exc:
        raise InvalidIdentifier(f"{raw!r} is not a valid unified social credit code") from exc


# Legal-form suffixes, matched against the folded name (NFKC, lower-case, single spaces).
# Longest first, so 股份有限公司 goes before 有限公司. Removed repeatedly ("… Co., Ltd." → "… co").
_SUFFIXES = (
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "有限公司",
    "分公司",
    "公司",
    "company limited",
    "co., ltd.",
    "co., ltd",
    "co. ltd.",
    "co.,ltd.",
    "co.,ltd",
    "co ltd",
    "corporation",
    "incorporated",
    "limited",
    "company",
    "corp.",
    "corp",
    "inc.",
    "inc",
    "ltd.",
    "ltd",
    "llc",
    "gmbh",
    "co.",
    "co",
)
_SPACES = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[\s\W_]+", re.UNICODE)


def normalize_company_name(raw: str) -> str:
    """A comparison key: full-width ``ABC 科技有限公司`` and ``abc科技`` give the same key.

    Empty after normalisation (a name that is only a legal form or punctuation) is invalid.
    """
    folded = _SPACES.sub(" ", unicodedata.normalize("NFKC", raw).casefold()).strip()
    # A trailing "(branch)" or "（北京）" stays: different legal entities, different keys.
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            if folded.endswith(suffix):
                head = folded[: -len(suffix)]
                # An ASCII suffix must stand alone ("... inc", not "zinc").
                if suffix.isascii() and head and head[-1].isalnum() and head[-1].isascii():
                    continue
                folded = head.rstrip(" ,.")
                changed = True
                break
    key = _PUNCTUATION.sub("", folded)
    if not key:
        raise InvalidIdentifier(f"{raw!r} is not a usable company name")
    return key


def match_keys(
    *,
    phone: str | None = None,
    email: str | None = None,
    uscc: str | None = None,
    company_name: str | None = None,
    phone_region: str = DEFAULT_PHONE_REGION,
) -> list[MatchKey]:
    """The sorted keys of a customer (sorted: concurrent registrations lock them in one order)."""
    keys = set()
    if phone:
        keys.add(MatchKey(MatchKind.PHONE, normalize_phone(phone, phone_region)))
    if email:
        keys.add(MatchKey(MatchKind.EMAIL, normalize_email(email)))
    if uscc:
        keys.add(MatchKey(MatchKind.USCC, normalize_uscc(uscc)))
    if company_name:
        keys.add(MatchKey(MatchKind.NAME, normalize_company_name(company_name)))
    return sorted(keys)
