"""The contract aggregate (thin platform version).

SHORTCUT (platform issue): a contract goes straight from ``draft`` to ``signed`` through
:meth:`Contract.sign_shortcut`. The contracts issue replaces it with review, approval by
discount authority and e-signature.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import ContactInfo, ContractDrafted, ContractSigned
from shared.events import ContractLine as ContractLineEvent

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class ContractStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


@dataclass(frozen=True)
class ContractLine:
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_pct: Decimal = Decimal(0)
    warranty_months: int = 0

    @property
    def amount(self) -> Decimal:
        return money(self.quantity * self.unit_price * (HUNDRED - self.discount_pct) / HUNDRED)


@dataclass(eq=False)
class Contract(Aggregate):
    id: uuid.UUID
    number: str
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    lines: list[ContractLine]
    payment_terms: str
    created_at: datetime
    contact: ContactInfo | None = None
    region: str | None = None
    discount_pct: Decimal = Decimal(0)
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    status: ContractStatus = ContractStatus.DRAFT
    signed_at: datetime | None = None

    @property
    def subtotal_amount(self) -> Decimal:
        return money(sum((line.amount for line in self.lines), Decimal(0)))

    @property
    def total_amount(self) -> Decimal:
        return money(self.subtotal_amount * (HUNDRED - self.discount_pct) / HUNDRED)

    @classmethod
    def draft(cls, **fields) -> Contract:
        contract = cls(**fields)
        if not contract.lines:
            raise DomainError("a contract needs at least one line")
        for line in contract.lines:
            if line.quantity <= 0:
                raise DomainError(f"line {line.sku}: quantity must be positive")
            if line.unit_price < 0:
                raise DomainError(f"line {line.sku}: unit price must not be negative")
            if not (0 <= line.discount_pct < 100):
                raise DomainError(f"line {line.sku}: discount must be between 0 and 100 %")
        if not (0 <= contract.discount_pct < 100):
            raise DomainError("discount must be between 0 and 100 %")
        contract.record(
            ContractDrafted(
                contract_id=contract.id,
                contract_number=contract.number,
                customer_id=contract.customer_id,
                customer_name=contract.customer_name,
                owner_id=contract.owner_id,
                currency=contract.currency,
                total_amount=contract.total_amount,
            )
        )
        return contract

    def sign_shortcut(self, now: datetime) -> None:
        """SHORTCUT: draft → signed in one step (no review, approval or signatures yet)."""
        if self.status != ContractStatus.DRAFT:
            raise InvalidTransition(f"a {self.status} contract cannot be signed")
        self.status = ContractStatus.SIGNED
        self.signed_at = now
        self.record(
            ContractSigned(
                contract_id=self.id,
                contract_number=self.number,
                customer_id=self.customer_id,
                customer_name=self.customer_name,
                contact=self.contact,
                owner_id=self.owner_id,
                region=self.region,
                currency=self.currency,
                lines=tuple(
                    ContractLineEvent(
                        line_no=i,
                        sku=line.sku,
                        description=line.description,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        discount_pct=line.discount_pct,
                        amount=line.amount,
                        warranty_months=line.warranty_months,
                    )
                    for i, line in enumerate(self.lines, start=1)
                ),
                subtotal_amount=self.subtotal_amount,
                discount_pct=self.discount_pct,
                total_amount=self.total_amount,
                payment_terms=self.payment_terms,
                delivery_address=self.delivery_address,
                requested_delivery_date=self.requested_delivery_date,
                signed_at=now,
            )
        )
