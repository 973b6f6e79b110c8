"""A customer's service tier, from the contracts it signed (``contract.signed``).

The service desk keeps no customer master: it learns from each signed contract how much the
customer has under contract, and a customer whose signed total reaches a tier's minimum gets
that tier's SLA policy (e.g. key accounts: faster targets). The minimums are data (settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal


def customer_tier(signed_totals: Mapping[str, Decimal], minimums: Mapping[str, Decimal], currency: str) -> str | None:
    """The highest tier whose minimum the signed total in ``currency`` reaches (None: no tier).

    Contracts in other currencies are kept but do not count: converting needs a rate we do not own.
    """
    total = signed_totals.get(currency, Decimal(0))
    reached = [(minimum, tier) for tier, minimum in minimums.items() if total >= minimum]
    return max(reached)[1] if reached else None
