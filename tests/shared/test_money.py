"""shared.money: the rounding contracts, orders and leads share (half-up to the cent)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.money import money


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        ("2.345", "2.35"),  # half up, not to even
        ("2.335", "2.34"),
        ("2.3449", "2.34"),
        ("-2.345", "-2.35"),  # half away from zero
        ("7", "7.00"),
        ("27443.555", "27443.56"),
    ],
)
def test_money_rounds_half_up_to_the_cent(value: str, rounded: str) -> None:
    result = money(Decimal(value))
    assert result == Decimal(rounded) and str(result) == rounded
