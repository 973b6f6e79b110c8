"""ApiModel, Money and Currency as plain pydantic types (no HTTP)."""

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.api import (
    INT64_MAX,
    INT64_MIN,
    ISO_4217_CURRENCIES,
    ApiModel,
    ApiResponse,
    Currency,
    CurrencyCode,
    Money,
    SignedMoney,
)


class Line(ApiModel):
    sku: str
    quantity: int
    unit_price: Money


class Plain(BaseModel):
    note: str


class Order(ApiModel):
    lines: list[Line]
    currency: Currency
    other: CurrencyCode | None = None
    adjustment: SignedMoney = Decimal(0)
    extra: dict[str, Any] = {}
    plain: Plain | None = None


def _errors(data: dict) -> list[tuple[tuple, str, str]]:
    with pytest.raises(ValidationError) as raised:
        Order.model_validate(data)
    return [(e["loc"], e["type"], e["msg"]) for e in raised.value.errors()]


def test_valid_order_serialises_money_as_two_decimal_strings() -> None:
    order = Order.model_validate({"lines": [{"sku": "a", "quantity": INT64_MAX, "unit_price": 5}], "other": "eur"})
    assert order.currency == "CNY" and order.other == "EUR"
    assert order.lines[0].unit_price == Decimal(5)
    dumped = order.model_dump(mode="json")
    assert dumped["lines"][0]["unit_price"] == "5.00" and dumped["adjustment"] == "0.00"
    assert order.model_dump()["lines"][0]["unit_price"] == Decimal(5)  # Python mode keeps Decimal for the DB


def test_nested_problems_are_located_precisely() -> None:
    assert _errors({"lines": [{"sku": "a", "quantity": INT64_MIN - 1, "unit_price": "1"}]}) == [
        (("lines", 0, "quantity"), "int64_range", "The integer must fit in a signed 64-bit integer")
    ]
    assert _errors({"lines": [], "extra": {"a": {"b": ["ok", "x\x00"]}}}) == [
        (("extra",), "string_nul", "NUL characters (\\u0000) are not allowed (at a.b.1)")
    ]
    # A plain BaseModel nested in an ApiModel is checked by the parent.
    assert _errors({"lines": [], "plain": {"note": "\x00"}})[0][:2] == (("plain",), "string_nul")


def test_money_rules() -> None:
    for value, code in [
        ("0.001", "money_format"),
        (0.1, "money_type"),
        (True, "money_type"),
        ("1,00", "money_format"),
        ("Infinity", "money_format"),
        (10**12, "money_range"),
        ("-0.01", "money_negative"),
    ]:
        errors = _errors({"lines": [{"sku": "a", "quantity": 1, "unit_price": value}]})
        assert errors[0][1] == code, value
    assert Order.model_validate({"lines": [], "adjustment": "-999999999999.99"}).adjustment == Decimal(
        "-999999999999.99"
    )


def test_currency_list_is_iso_4217_without_funds_or_test_codes() -> None:
    assert {"CNY", "USD", "EUR", "JPY", "HKD", "GBP"} <= ISO_4217_CURRENCIES
    assert not {"XXX", "XTS", "XAU", "BOV", "USN"} & ISO_4217_CURRENCIES
    assert all(len(code) == 3 and code.isupper() for code in ISO_4217_CURRENCIES)
    assert _errors({"lines": [], "currency": "RMB"})[0][1] == "currency"


def test_response_models_ignore_extra_attributes() -> None:
    class Read(ApiResponse):
        id: int
        price: Money

    class Row:
        id = 1
        price = Decimal("2.5")
        internal = "not exposed"

    assert Read.model_validate(Row()).model_dump(mode="json") == {"id": 1, "price": "2.50"}
