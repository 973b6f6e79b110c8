"""Rounding money, the same way in every service.

Every schema stores amounts as ``NUMERIC(14, 2)`` and the API shows two decimals whatever the
currency, so an amount is rounded half-up to the cent (as contracts, orders and leads each did
with a copy of this function: a quote, the contract drafted from it and its order agree to the
cent).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
