"""Base classes and field types for HTTP request and response schemas.

``ApiModel`` is the base of every request body: unknown fields are a 422 (a typo in a field
name must not be silently ignored), and no string or integer anywhere in it, however deeply
nested, can make the database fail later with a 500:

- PostgreSQL ``text`` cannot store NUL (``\\x00``), and a lone UTF-16 surrogate (valid in JSON
  as ``"\\ud800"``) cannot be encoded as UTF-8: both are rejected;
- integers must fit a signed 64-bit ``bigint`` (asyncpg raises an overflow error otherwise).

``ApiResponse`` is the base of response bodies: built from rows or domain objects
(``from_attributes``), extra attributes ignored, no input checks (the data is ours).

``Money`` is a decimal string with at most 2 decimal places and 12 integer digits (store it in
``NUMERIC(14, 2)``), never a float; ``Currency`` is an ISO 4217 code, default ``CNY``
(``CurrencyCode`` is the same without the default, for ``CurrencyCode | None`` and lists).
``Int64`` and ``SafeStr`` apply the same checks to query and path parameters.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _string_problem(value: str) -> tuple[str, str] | None:
    if "\x00" in value:
        return "string_nul", "NUL characters (\\u0000) are not allowed"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "string_unicode", "The string is not valid Unicode (lone surrogate)"
    return None


def _find_unstorable(value: Any) -> tuple[str, str, list[str | int]] | None:
    """The first string or integer in ``value`` the database could not store, with its path.

    Nested ``ApiModel`` instances are skipped: their own validator already checked them, so
    the walk stays linear in the size of the body.
    """
    if isinstance(value, str):
        found = _string_problem(value)
        return (*found, []) if found else None
    if isinstance(value, int):  # bool is an int, and always in range
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return "int64_range", "The integer must fit in a signed 64-bit integer", []
    if isinstance(value, ApiModel):
        return None
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = _find_unstorable(item)
            if found:
                found[2].insert(0, index)
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_unstorable(key)
            if found:
                found[2].insert(0, "<key>")
                return found
            found = _find_unstorable(item)
            if found:
                found[2].insert(0, key)
                return found
        return None
    if isinstance(value, BaseModel):
        return _find_unstorable(value.__dict__)
    return None


class ApiModel(BaseModel):
    """Base of request bodies: unknown fields forbidden, only storable strings and integers."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @field_validator("*", mode="after")
    @classmethod
    def _reject_unstorable(cls, value: Any) -> Any:
        found = _find_unstorable(value)
        if found is not None:
            code, message, path = found
            if path:
                message = f"{message} (at {'.'.join(str(p) for p in path)})"
            raise PydanticCustomError(code, message)
        return value


class ApiResponse(BaseModel):
    """Base of response bodies: built from rows or objects; extra attributes ignored."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")


# -- scalar types for parameters -------------------------------------------------------------


def _check_str(value: str) -> str:
    found = _string_problem(value)
    if found:
        raise PydanticCustomError(*found)
    return value


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer that fits PostgreSQL ``bigint``; use it for query and path parameters."""

SafeStr = Annotated[str, AfterValidator(_check_str)]
"""A string PostgreSQL ``text`` can store; use it for query and path parameters."""


# -- money -----------------------------------------------------------------------------------

MONEY_PRECISION = 14
MONEY_SCALE = 2
MONEY_MAX = Decimal("999999999999.99")
_MONEY_RE = re.compile(r"-?\d{1,12}(?:\.\d{1,2})?")
_MONEY_PATTERN = r"^-?\d{1,12}(\.\d{1,2})?$"
_MONEY_MESSAGE = 'Money is a decimal string with at most 12 integer digits and 2 decimal places, e.g. "1299.00"'


def _parse_money(value: Any) -> Decimal:
    """Accept decimal strings and integers; refuse floats (binary fractions are not money)."""
    if isinstance(value, str):
        if not _MONEY_RE.fullmatch(value):
            raise PydanticCustomError("money_format", _MONEY_MESSAGE)
        return Decimal(value)
    if isinstance(value, bool) or isinstance(value, float):
        raise PydanticCustomError("money_type", _MONEY_MESSAGE)
    if isinstance(value, int):
        if not -MONEY_MAX <= value <= MONEY_MAX:
            raise PydanticCustomError("money_range", _MONEY_MESSAGE)
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    raise PydanticCustomError("money_type", _MONEY_MESSAGE)


def _parse_non_negative_money(value: Any) -> Decimal:
    amount = _parse_money(value)
    if amount < 0:
        raise PydanticCustomError("money_negative", "The amount must not be negative")
    return amount


def _format_money(value: Decimal) -> str:
    return f"{value:.{MONEY_SCALE}f}"


def _money(*, signed: bool) -> Any:
    return Annotated[
        Decimal,
        # Backstop for Decimal values built in Python: finite, bounded, 2 decimal places. Before
        # the BeforeValidator, so pydantic-core checks them natively (after it, pydantic ran
        # them in Python: 16 calls per contract request).
        Field(
            ge=-MONEY_MAX if signed else Decimal(0),
            le=MONEY_MAX,
            max_digits=MONEY_PRECISION,
            decimal_places=MONEY_SCALE,
        ),
        BeforeValidator(_parse_money if signed else _parse_non_negative_money),
        PlainSerializer(_format_money, return_type=str, when_used="json"),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": _MONEY_PATTERN if signed else _MONEY_PATTERN.replace("^-?", "^"),
                "examples": ["1299.00"],
                "description": "Decimal amount as a string (2 decimal places), in the accompanying currency",
            }
        ),
    ]


Money = _money(signed=False)
"""A non-negative amount: a decimal string in JSON, a ``Decimal`` in Python."""

SignedMoney = _money(signed=True)
"""An amount that may be negative (adjustments, refunds)."""


# -- currency --------------------------------------------------------------------------------

DEFAULT_CURRENCY = "CNY"

# ISO 4217 "List One" currencies as shipped in Debian's iso-codes 4.15 (iso_4217.json),
# without fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals, bond
# market units, SDR, XSU, XUA and the XTS/XXX test codes, plus ZWG (2024) and XCG (2025).
# Neither pycountry nor babel is a dependency; python-stdnum has no currency list. Review
# when ISO publishes an amendment (https://www.six-group.com/en/products-services/
# financial-information/data-standards.html).
ISO_4217_CURRENCIES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG ZWL
    """.split()
)


def _check_currency(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 3 and value.upper() in ISO_4217_CURRENCIES:
        return value.upper()
    raise PydanticCustomError("currency", "Unknown currency: expected an ISO 4217 code such as CNY, USD, EUR")


CurrencyCode = Annotated[
    str,
    BeforeValidator(_check_currency),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code",
            "examples": [DEFAULT_CURRENCY],
        }
    ),
]
"""An ISO 4217 currency code (upper-cased on input), without a default: for optional fields and lists."""

Currency = Annotated[CurrencyCode, Field(default=DEFAULT_CURRENCY)]
"""An ISO 4217 currency code (upper-cased on input); defaults to ``CNY``."""


def _storable_instant(value: datetime) -> datetime:
    """PostgreSQL and asyncpg cannot take every datetime Python can (e.g. 9999-12-31T23:59-12:00)."""
    if not 1970 <= value.year <= 9000 or value.utcoffset() is None:
        raise PydanticCustomError("datetime_range", "The time must have an offset and lie between 1970 and 9000")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_storable_instant)]
"""An ISO 8601 time with an offset, in a range the database stores."""
