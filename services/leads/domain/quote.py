"""Quotes: lines priced with tiered volume discounts, an extra discount within the rep's authority.

Volume discounts come from price rules that are data (``services/leads/price_rules.json``,
versioned; every quote records the version that priced it): per SKU, or the default, the tier
with the highest ``min_quantity`` the line's quantity reaches gives the line's discount.
The extra discount on the whole quote is limited by the author's discount authority, read
from the shared policy (``shared/policies/discount_authority.json``, the one contracts and
orders use). Amounts are Decimal, rounded half-up to the cent the way contracts computes them,
so a contract drafted from the quote has the same totals:

- line amount = quantity * unit price * (100 - volume discount %) / 100, to the cent;
- subtotal = the sum of the line amounts;
- total = subtotal * (100 - extra discount %) / 100, to the cent; discount amount = subtotal - total.

A draft quote is accepted (before its validity date) once; an opportunity has at most one
accepted quote, the one it is won on.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.leads.domain.opportunity import HUNDRED, WinningQuote
from shared.api import MONEY_MAX
from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import ContractLine, QuoteAccepted
from shared.money import money
from shared.policies import DiscountAuthority


@dataclass(frozen=True, slots=True)
class PriceTier:
    min_quantity: Decimal
    discount_pct: Decimal


@dataclass(frozen=True, slots=True)
class PriceRules:
    version: int
    default: tuple[PriceTier, ...] = ()
    by_sku: dict[str, tuple[PriceTier, ...]] = field(default_factory=dict)

    def volume_discount(self, sku: str, quantity: Decimal) -> Decimal:
        tiers = self.by_sku.get(sku, self.default)
        reached = [t for t in tiers if quantity >= t.min_quantity]
        return max(reached, key=lambda t: t.min_quantity).discount_pct if reached else Decimal("0.00")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriceRules:
        """Parse and check a rule set; a malformed one is a ``ValueError`` naming the problem."""
        try:
            version = data["version"]
            if not isinstance(version, int) or version < 1:
                raise ValueError("version must be a positive integer")
            return cls(
                version=version,
                default=_tiers(data.get("default", [])),
                by_sku={str(sku): _tiers(tiers) for sku, tiers in data.get("by_sku", {}).items()},
            )
        except (KeyError, TypeError, AttributeError, InvalidOperation) as exc:
            raise ValueError(f"malformed price rules: {exc!r}") from exc

    @classmethod
    def load(cls, path: Path) -> PriceRules:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _tiers(raw: list[dict[str, Any]]) -> tuple[PriceTier, ...]:
    tiers = tuple(PriceTier(Decimal(str(t["min_quantity"])), money(Decimal(str(t["discount_pct"])))) for t in raw)
    for tier in tiers:
        if tier.min_quantity <= 0 or not (0 <= tier.discount_pct < 100):
            raise ValueError(f"a tier needs a positive quantity and a discount in [0, 100): {tier}")
    return tiers


@dataclass(frozen=True, slots=True)
class QuoteLine:
    line_no: int
    sku: str
    name: str
    quantity: Decimal
    unit_price: Decimal
    volume_discount_pct: Decimal = Decimal(0)

    @property
    def list_amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)

    @property
    def amount(self) -> Decimal:
        return money(self.quantity * self.unit_price * (HUNDRED - self.volume_discount_pct) / HUNDRED)


@dataclass(frozen=True, slots=True)
class LineInput:
    sku: str
    name: str
    quantity: Decimal
    unit_price: Decimal


class QuoteStatus(StrEnum):
    DRAFT = "draft"
    ACCEPTED = "accepted"


@dataclass(eq=False)
class Quote(Aggregate):
    id: uuid.UUID
    number: str
    opportunity_id: uuid.UUID
    account_id: uuid.UUID
    owner_id: str
    currency: str
    lines: tuple[QuoteLine, ...]
    extra_discount_pct: Decimal
    valid_until: date
    price_rules_version: int
    discount_policy_version: str
    created_by: str
    created_at: datetime
    team: str | None = None
    region: str | None = None
    payment_terms: str | None = None
    delivery_address: str | None = None
    status: QuoteStatus = QuoteStatus.DRAFT
    accepted_by: str | None = None
    accepted_at: datetime | None = None

    @property
    def subtotal_amount(self) -> Decimal:
        return money(sum((line.amount for line in self.lines), Decimal(0)))

    @property
    def total_amount(self) -> Decimal:
        return money(self.subtotal_amount * (HUNDRED - self.extra_discount_pct) / HUNDRED)

    @property
    def discount_amount(self) -> Decimal:
        return self.subtotal_amount - self.total_amount

    @classmethod
    def draft(
        cls,
        lines: list[LineInput],
        *,
        rules: PriceRules,
        policy: DiscountAuthority,
        author_roles: frozenset[str],
        extra_discount_pct: Decimal,
        today: date,
        **fields: Any,
    ) -> Quote:
        if not lines:
            raise DomainError("a quote needs at least one line")
        if fields["valid_until"] < today:
            raise DomainError("the validity date is in the past")
        if not (0 <= extra_discount_pct < 100):
            raise DomainError("the extra discount is a percentage in [0, 100)")
        if extra_discount_pct > 0:
            authority = policy.authority_of(author_roles)
            if authority is None or not authority.covers(extra_discount_pct):
                limit = "none" if authority is None else f"{authority.max_discount_pct}% ({authority.role})"
                raise DomainError(
                    f"an extra discount of {extra_discount_pct}% exceeds your discount authority: {limit},"
                    f" policy {policy.version}"
                )
        priced = tuple(
            QuoteLine(
                line_no=i,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                volume_discount_pct=rules.volume_discount(line.sku, line.quantity),
            )
            for i, line in enumerate(lines, start=1)
        )
        if sum((line.list_amount for line in priced), Decimal(0)) > MONEY_MAX:
            raise DomainError(f"the quote's amounts exceed {MONEY_MAX}")
        return cls(
            lines=priced,
            extra_discount_pct=money(extra_discount_pct),
            price_rules_version=rules.version,
            discount_policy_version=policy.version,
            **fields,
        )

    def accept(self, *, by: str, now: datetime) -> None:
        if self.status is not QuoteStatus.DRAFT:
            raise InvalidTransition(f"the quote is {self.status.value}")
        if now.date() > self.valid_until:
            raise InvalidTransition(f"the quote expired on {self.valid_until.isoformat()}")
        self.status, self.accepted_by, self.accepted_at = QuoteStatus.ACCEPTED, by, now
        self.record(
            QuoteAccepted(
                quote_id=self.id,
                quote_number=self.number,
                opportunity_id=self.opportunity_id,
                account_id=self.account_id,
                owner_id=self.owner_id,
                currency=self.currency,
                subtotal_amount=self.subtotal_amount,
                discount_pct=self.extra_discount_pct,
                total_amount=self.total_amount,
                accepted_by=by,
                accepted_at=now,
            )
        )

    def winning(self) -> WinningQuote:
        """The accepted quote as ``opportunity.won`` carries it (contract line shape)."""
        if self.status is not QuoteStatus.ACCEPTED:
            raise InvalidTransition("only an accepted quote wins an opportunity")
        return WinningQuote(
            id=self.id,
            number=self.number,
            currency=self.currency,
            lines=tuple(
                ContractLine(
                    line_no=line.line_no,
                    sku=line.sku,
                    description=line.name,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    discount_pct=line.volume_discount_pct,
                    amount=line.amount,
                )
                for line in self.lines
            ),
            subtotal_amount=self.subtotal_amount,
            discount_pct=self.extra_discount_pct,
            total_amount=self.total_amount,
            payment_terms=self.payment_terms,
            delivery_address=self.delivery_address,
        )
