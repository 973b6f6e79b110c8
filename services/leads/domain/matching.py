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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(slots=True)
class KeyRegistration:
    """A customer-key registry entry: who registered the key first, for which lead or account
    (the registry table's rows have the same fields)."""

    kind: str
    value: str
    owner_id: str | None
    lead_id: uuid.UUID | None
    account_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    """What the earlier registrations of a new lead's keys say about it."""

    duplicate_of_lead_id: uuid.UUID | None  # the lead that registered the customer first
    matched_account_id: uuid.UUID | None
    owner_id: str | None  # the first owner of the customer (None: nobody owns it yet)
    conflicts: tuple[KeyRegistration, ...]  # keys owned by another rep than the registering one


def match_customer(earlier: Sequence[KeyRegistration], *, claimant: str | None) -> CustomerMatch:
    """The first-registered-owner rule. ``earlier``: the registry entries of the lead's keys that
    were registered before it, first registration first (keys of pool leads have no owner);
    ``claimant``: the rep registering it (None: registered for the assignment rules)."""
    owned = [r for r in earlier if r.owner_id is not None]
    return CustomerMatch(
        duplicate_of_lead_id=earlier[0].lead_id if earlier else None,
        matched_account_id=next((r.account_id for r in earlier if r.account_id is not None), None),
        owner_id=owned[0].owner_id if owned else None,
        conflicts=tuple(r for r in owned if claimant is not None and r.owner_id != claimant),
    )
