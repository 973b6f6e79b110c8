"""Request and response bodies of the orders API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import EmailStr, Field, PrivateAttr, model_validator

from services.orders.domain import OrderLine
from shared.api import ApiModel, ApiResponse, Currency, CurrencyCode, Money, SignedMoney
from shared.money import money

Text100 = Annotated[str, Field(min_length=1, max_length=100)]
Text500 = Annotated[str, Field(min_length=1, max_length=500)]
Quantity = Annotated[Decimal, Field(gt=0, le=Decimal("999999999"), max_digits=12, decimal_places=3)]
Percent = Annotated[Decimal, Field(ge=0, lt=100, max_digits=5, decimal_places=2)]
PaymentMethod = Literal["bank_transfer", "letter_of_credit", "bank_acceptance", "card", "cash", "cheque"]


# -- responses ---------------------------------------------------------------------------------


class OrderLineRead(ApiResponse):
    line_no: int
    sku: str
    description: str
    quantity: Decimal
    unit_price: Money
    discount_pct: Decimal
    amount: Money
    warranty_months: int
    serial_numbers: list[str]


class ContactRead(ApiResponse):
    name: str
    email: str | None = None
    phone: str | None = None


class ApprovalStepRead(ApiResponse):
    """One level of one approval round: who decided, in which role, under which policy, on what figures."""

    round: int
    level: str
    role: str
    status: str
    change_request: bool
    rule: str | None
    decided_by: str | None
    decided_role: str | None
    decided_at: datetime | None
    policy_version: str | None
    figures: dict[str, str]
    reason: str | None
    entered_at: datetime | None


class ShipmentItemRead(ApiResponse):
    line_no: int
    quantity: Decimal
    serial_numbers: list[str]


class ShipmentRead(ApiResponse):
    id: uuid.UUID
    status: str
    items: list[ShipmentItemRead]
    carrier: str | None
    tracking_number: str | None
    expected_delivery_date: str | None
    created_at: datetime
    picked_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None


class PaymentRead(ApiResponse):
    id: uuid.UUID
    amount: Money
    received_at: datetime
    reference: str | None


class InvoiceRead(ApiResponse):
    number: str
    amount: Money
    issued_at: datetime
    due_date: str | None


class ChangeRead(ApiResponse):
    lines: list[OrderLineRead] | None
    payment_terms: str | None
    payment_method: str | None
    delivery_address: str | None
    requested_delivery_date: str | None
    reason: str | None
    requested_by: str | None


class OrderRead(ApiResponse):
    id: uuid.UUID
    number: str
    status: str
    version: int
    contract_id: uuid.UUID | None
    customer_id: str
    customer_name: str
    contact: ContactRead | None
    owner_id: str
    owner_role: str
    region: str | None
    currency: str
    lines: list[OrderLineRead]
    total_amount: Money
    discount_pct: Decimal
    payment_terms: str
    payment_method: str | None
    prepayment_required: Money
    paid_amount: Money
    outstanding_amount: Decimal
    delivery_address: str | None
    requested_delivery_date: str | None
    promised_delivery_date: str | None
    approval_round: int
    pending_role: str | None = Field(description="The role whose approval queue the order is in")
    credit_hold: bool
    approvals: list[ApprovalStepRead]
    pending_change: ChangeRead | None = Field(description="A change request waiting for approval")
    shipments: list[ShipmentRead]
    payments: list[PaymentRead]
    invoices: list[InvoiceRead]
    created_at: datetime
    approved_at: datetime | None
    delivered_at: datetime | None
    cancelled_reason: str | None
    closed_at: datetime | None


# -- requests ----------------------------------------------------------------------------------


class ContactIn(ApiModel):
    name: Text100
    email: Annotated[EmailStr, Field(max_length=254)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None


class OrderLineIn(ApiModel):
    sku: Text100
    description: Text500
    quantity: Quantity
    unit_price: Money
    discount_pct: Percent = Decimal(0)
    warranty_months: Annotated[int, Field(ge=0, le=600)] = 0
    amount: Money | None = Field(
        default=None, description="The line amount as the client computed it; must match to the cent"
    )

    def to_line(self, line_no: int) -> OrderLine:
        amount = money(self.quantity * self.unit_price * (100 - self.discount_pct) / 100)
        if self.amount is not None and self.amount != amount:
            raise ValueError(f"line {line_no}: amount {self.amount} does not add up (expected {amount})")
        return OrderLine(
            line_no=line_no,
            sku=self.sku,
            description=self.description,
            quantity=self.quantity,
            unit_price=self.unit_price,
            amount=amount,
            warranty_months=self.warranty_months,
            discount_pct=self.discount_pct,
        )


def _lines_adding_up(lines: list[OrderLineIn], total: Decimal) -> list[OrderLine]:
    built = [line.to_line(i) for i, line in enumerate(lines, start=1)]
    computed = money(sum((line.amount for line in built), Decimal(0)))
    if computed != total:
        raise ValueError(f"total_amount {total} does not add up to the lines ({computed})")
    return built


class OrderCreate(ApiModel):
    """An order entered by hand. ``total_amount`` must equal the sum of the line amounts to the cent."""

    customer_id: Text100
    customer_name: Text500
    contact: ContactIn | None = None
    region: Text100 | None = None
    currency: Currency
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=500)]
    total_amount: Money
    payment_terms: Annotated[str, Field(min_length=1, max_length=200, examples=["net 30", "30% prepayment, net 30"])]
    payment_method: PaymentMethod
    delivery_address: Text500
    requested_delivery_date: date | None = None
    _lines: list[OrderLine] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _totals_add_up(self) -> OrderCreate:
        self._lines = _lines_adding_up(self.lines, self.total_amount)
        return self

    def order_lines(self) -> list[OrderLine]:
        return self._lines


class OrderChange(ApiModel):
    """Before approval the order is amended and approval restarts; after approval this is a change request."""

    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=500)] | None = None
    total_amount: Money | None = None
    payment_terms: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    payment_method: PaymentMethod | None = None
    delivery_address: Text500 | None = None
    requested_delivery_date: date | None = None
    reason: Text500 | None = None
    _lines: list[OrderLine] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _totals_add_up(self) -> OrderChange:
        if (self.lines is None) != (self.total_amount is None):
            raise ValueError("lines and total_amount go together")
        self._lines = _lines_adding_up(self.lines, self.total_amount) if self.lines is not None else None
        return self

    def order_lines(self) -> list[OrderLine] | None:
        return self._lines


class Reason(ApiModel):
    reason: Text500


class ShipmentItemIn(ApiModel):
    line_no: Annotated[int, Field(ge=1, le=10_000)]
    quantity: Quantity


class ShipmentCreate(ApiModel):
    items: Annotated[list[ShipmentItemIn], Field(min_length=1, max_length=500)]
    carrier: Text100 | None = None
    expected_delivery_date: date | None = None


class SerialNumbers(ApiModel):
    line_no: Annotated[int, Field(ge=1, le=10_000)]
    serial_numbers: Annotated[list[Text100], Field(max_length=10_000)]


class ShipmentShip(ApiModel):
    carrier: Text100 | None = None
    tracking_number: Text100 | None = None
    lines: Annotated[list[SerialNumbers], Field(max_length=500)] = []
    expected_delivery_date: date | None = None


class Delay(ApiModel):
    promised_date: date
    reason: Text500
    shipment_id: uuid.UUID | None = None


class PaymentIn(ApiModel):
    amount: Money
    reference: Text100 | None = None


class InvoiceIn(ApiModel):
    number: Text100
    amount: Money
    due_date: date | None = None


class CreditPositionRead(ApiResponse):
    customer_id: str
    currency: str
    credit_limit: Money
    limit_source: str = Field(description="`customer` (ERP or finance), `default`, or why the limit does not apply")
    outstanding_balance: Money = Field(description="Unpaid on the customer's approved, not yet closed orders")
    available: SignedMoney = Field(description="credit_limit - outstanding_balance; negative when over the limit")
    orders_on_credit_hold: int


class CreditLimitIn(ApiModel):
    credit_limit: Money
    currency: Currency


class DeliveredLine(ApiModel):
    line_no: Annotated[int, Field(ge=1, le=10_000)]
    serial_numbers: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=10_000)]


class DeliverOrder(ApiModel):
    """SHORTCUT (platform issue): the rest of the order ships and is delivered at once."""

    lines: Annotated[list[DeliveredLine], Field(max_length=500)] = []


# -- ERP callbacks -----------------------------------------------------------------------------


class ErpShipmentDispatched(ApiModel):
    order_number: Text100
    shipment_id: uuid.UUID
    carrier: Text100 | None = None
    tracking_number: Text100 | None = None
    lines: Annotated[list[SerialNumbers], Field(max_length=500)] = []
    expected_delivery_date: date | None = None


class ErpShipmentDelivered(ApiModel):
    order_number: Text100
    shipment_id: uuid.UUID


class ErpPaymentReceived(ApiModel):
    order_number: Text100
    payment_id: uuid.UUID
    amount: Money
    currency: CurrencyCode
    reference: Text100 | None = None


class ErpCreditLimitChanged(ApiModel):
    customer_id: Text100
    credit_limit: Money
    currency: CurrencyCode


class ErpInvoiceIssued(ApiModel):
    order_number: Text100
    invoice_number: Text100
    amount: Money
    issued_at: datetime | None = None
    due_date: date | None = None


class ErpAck(ApiResponse):
    webhook_id: str
    applied: bool = Field(description="False when this webhook-id had already been applied (a replay)")


# -- reports -----------------------------------------------------------------------------------


class CycleTime(ApiResponse):
    level: str
    decisions: int
    avg_seconds: float
    p50_seconds: float
    max_seconds: float


class CycleTimes(ApiResponse):
    since: datetime
    until: datetime
    levels: list[CycleTime]


class OnTimeDelivery(ApiResponse):
    since: datetime
    until: datetime
    delivered: int
    with_requested_date: int
    on_time: int
    on_time_rate: Decimal | None = Field(description="on_time / with_requested_date, 4 decimals; null without data")


class Receivable(ApiResponse):
    customer_id: str
    currency: str
    outstanding: Money = Field(description="invoiced + not_invoiced: unpaid on approved, unclosed orders")
    invoiced: Money = Field(description="Invoiced and unpaid: not_due + the days-past-due columns")
    not_due: Money
    days_1_30: Money
    days_31_60: Money
    days_61_90: Money
    days_over_90: Money
    not_invoiced: Money
