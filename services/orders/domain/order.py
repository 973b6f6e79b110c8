"""The order aggregate: entry, three-level approval, fulfilment, delivery, payment.

An order enters at the approval stage (from ``contract.signed`` or by hand). Each approval
round has three levels: the sales manager checks the basics; the discount level needs an
approver whose authority (``shared/policies/discount_authority.json``) covers the order's
effective discount, and is skipped (with the rule) when the owner's own authority, or the
sales manager's, covers it; finance approves payment terms and credit, and the order goes on
credit hold when the customer's outstanding balance plus this order exceeds the credit limit.
A rejection returns the order to its owner. Amendments before approval restart approval;
after approval they are change requests that run their own round and apply when approved.

Approved orders are released to fulfilment (or wait for the prepayment their terms ask for);
shipments go released → picked → shipped → delivered, and ``order.delivered`` is recorded
exactly once, when the last quantity is delivered. Delivered and fully paid is completed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from services.orders.domain.values import (
    APPROVED_UNSHIPPED,
    BEFORE_APPROVAL,
    CHANGEABLE_AFTER_APPROVAL,
    HUNDRED,
    SHIPPABLE,
    Amendment,
    ApprovalStep,
    CreditFigures,
    Invoice,
    Level,
    OrderLine,
    OrderStatus,
    Payment,
    Shipment,
    ShipmentItem,
    ShipmentStatus,
    StepStatus,
    prepayment_pct_from_terms,
)
from shared.domain import Aggregate, DomainError, InvalidTransition, NotFound
from shared.events import (
    ContactInfo,
    ContractSigned,
    DeliveredItem,
    InvoiceIssued,
    OrderApproved,
    OrderCancelled,
    OrderChanged,
    OrderCreated,
    OrderDelayed,
    OrderDelivered,
    OrderRejected,
    OrderShipped,
    PaymentReceived,
    ShippedItem,
)
from shared.money import money
from shared.policies import DiscountAuthority

ADMIN = "admin"
SALES_REP = "sales_rep"
SALES_MANAGER = "sales_manager"
FINANCE = "finance"
REGIONAL_DIRECTOR = "regional_director"
MARKETING_DIRECTOR = "marketing_director"
CLOSED = (OrderStatus.DELIVERED, OrderStatus.COMPLETED, OrderStatus.CANCELLED)


class NotAnApprover(DomainError):
    """The caller does not hold the authority this approval level needs."""

    status = 403
    title = "Forbidden"


class Overpayment(DomainError):
    """A payment above what the order still owes: the surplus would have nowhere to go.

    Refunds and credit notes are not kept here, so finance records at most the outstanding amount.
    """

    title = "Payment exceeds the amount due"
    slug = "overpayment"

    def __init__(self, order: Order, amount: Decimal) -> None:
        self.extensions = {"outstanding_amount": str(order.outstanding_amount), "currency": order.currency}
        super().__init__(
            f"a payment of {amount} {order.currency} exceeds the {order.outstanding_amount} {order.currency} "
            f"outstanding on order {order.number} ({order.paid_amount} of {order.total_amount} paid)"
        )


def effective_discount_pct(lines: list[OrderLine] | tuple[OrderLine, ...], total: Decimal) -> Decimal:
    """The discount off the list amount (quantity x unit price), line and header discounts together."""
    list_amount = sum((line.list_amount for line in lines), Decimal(0))
    if list_amount <= 0:
        return Decimal(0)
    return money((list_amount - total) * HUNDRED / list_amount)


def check_lines(lines: list[OrderLine] | tuple[OrderLine, ...]) -> None:
    if not lines:
        raise DomainError("an order needs at least one line")
    if len({line.line_no for line in lines}) != len(lines):
        raise DomainError("line numbers must be unique")
    for line in lines:
        if line.quantity <= 0:
            raise DomainError(f"line {line.line_no}: the quantity must be positive")
        if line.unit_price < 0 or line.amount < 0:
            raise DomainError(f"line {line.line_no}: amounts must not be negative")


@dataclass(eq=False)
class Order(Aggregate):
    id: uuid.UUID
    number: str
    customer_id: str
    customer_name: str
    owner_id: str
    currency: str
    lines: list[OrderLine]
    total_amount: Decimal
    payment_terms: str
    created_at: datetime
    contract_id: uuid.UUID | None = None
    contact: ContactInfo | None = None
    region: str | None = None
    delivery_address: str | None = None
    requested_delivery_date: str | None = None
    status: OrderStatus = OrderStatus.PENDING_APPROVAL
    delivered_at: datetime | None = None
    owner_role: str = SALES_REP
    payment_method: str | None = None
    promised_delivery_date: str | None = None
    approval_round: int = 0
    approvals: list[ApprovalStep] = field(default_factory=list)
    pending_change: Amendment | None = None
    shipments: list[Shipment] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    paid_amount: Decimal = Decimal(0)
    approved_at: datetime | None = None
    cancelled_reason: str | None = None
    closed_at: datetime | None = None  # completed or cancelled

    # -- entry --------------------------------------------------------------------------------

    @classmethod
    def from_signed_contract(
        cls, event: ContractSigned, *, order_id: uuid.UUID, number: str, now: datetime, policy: DiscountAuthority
    ) -> Order:
        """A signed contract's order starts at the approval stage (the contract owner is a rep)."""
        lines = [
            OrderLine(
                line_no=line.line_no,
                sku=line.sku,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                warranty_months=line.warranty_months,
                discount_pct=line.discount_pct,
            )
            for line in event.lines
        ]
        return cls._enter(
            id=order_id,
            number=number,
            contract_id=event.contract_id,
            customer_id=event.customer_id,
            customer_name=event.customer_name,
            contact=event.contact,
            owner_id=event.owner_id,
            region=event.region,
            currency=event.currency,
            lines=lines,
            total_amount=event.total_amount,
            payment_terms=event.payment_terms,
            delivery_address=event.delivery_address,
            requested_delivery_date=event.requested_delivery_date,
            promised_delivery_date=event.requested_delivery_date,
            created_at=now,
            policy=policy,
        )

    @classmethod
    def enter(cls, *, policy: DiscountAuthority, **fields) -> Order:
        """An order entered by hand; totals were checked to the cent by the caller's schema."""
        check_lines(fields["lines"])
        fields.setdefault("promised_delivery_date", fields.get("requested_delivery_date"))
        return cls._enter(policy=policy, **fields)

    @classmethod
    def _enter(cls, *, policy: DiscountAuthority, **fields) -> Order:
        order = cls(**fields)
        order.record(
            OrderCreated(
                order_id=order.id,
                order_number=order.number,
                contract_id=order.contract_id,
                customer_id=order.customer_id,
                customer_name=order.customer_name,
                owner_id=order.owner_id,
                currency=order.currency,
                total_amount=order.total_amount,
            )
        )
        order._start_round(order.created_at, policy, change_request=False)
        return order

    # -- derived ------------------------------------------------------------------------------

    @property
    def discount_pct(self) -> Decimal:
        return effective_discount_pct(self.lines, self.total_amount)

    @property
    def prepayment_pct(self) -> Decimal:
        return prepayment_pct_from_terms(self.payment_terms)

    @property
    def prepayment_required(self) -> Decimal:
        return money(self.total_amount * self.prepayment_pct / HUNDRED)

    @property
    def outstanding_amount(self) -> Decimal:
        return self.total_amount - self.paid_amount

    @property
    def current_steps(self) -> list[ApprovalStep]:
        return [step for step in self.approvals if step.round == self.approval_round]

    @property
    def pending_role(self) -> str | None:
        """The role whose approval queue this order is in (None when nobody has to decide)."""
        step = self._open_step(StepStatus.PENDING)
        return step.role if step else None

    @property
    def credit_hold(self) -> bool:
        return self._open_step(StepStatus.ON_HOLD) is not None

    def credit_basis(self) -> Decimal:
        """The amount the finance level checks against credit: what is still unpaid after the change."""
        total = self._amended_total() if self.pending_change else self.total_amount
        return max(total - self.paid_amount, Decimal(0))

    # -- approval -----------------------------------------------------------------------------

    def approve(
        self,
        *,
        by: str,
        roles: frozenset[str],
        now: datetime,
        policy: DiscountAuthority,
        credit: CreditFigures,
        region: str | None = None,
    ) -> ApprovalStep:
        """The current level approves; ``credit`` are the figures finance would decide on."""
        step = self._open_step(StepStatus.PENDING)
        if step is None:
            if self._open_step(StepStatus.ON_HOLD):
                raise InvalidTransition("the order is on credit hold: raise the credit limit or receive a payment")
            raise InvalidTransition(f"a {self.status} order has no approval pending")
        self._check_approver(step, by, roles, policy, region)
        if step.level == Level.FINANCE and not credit.within_limit:
            self._hold(step, credit, now)
            return self._step(step.level)
        decided_role = self._deciding_role(step, roles, policy)
        self._replace(
            step,
            status=StepStatus.APPROVED,
            decided_by=by,
            decided_role=decided_role,
            decided_at=now,
            policy_version=policy.version,
            figures=self._figures(step.level, policy, decided_role, credit),
        )
        self._advance(now, credit)
        return self._step(step.level)

    def reject(
        self,
        *,
        by: str,
        roles: frozenset[str],
        reason: str,
        now: datetime,
        policy: DiscountAuthority,
        region: str | None = None,
    ) -> ApprovalStep:
        step = self._open_step(StepStatus.PENDING) or self._open_step(StepStatus.ON_HOLD)
        if step is None:
            raise InvalidTransition(f"a {self.status} order has no approval pending")
        if not reason.strip():
            raise DomainError("a rejection needs a reason")
        self._check_approver(step, by, roles, policy, region)
        decided_role = self._deciding_role(step, roles, policy)
        self._replace(
            step,
            status=StepStatus.REJECTED,
            decided_by=by,
            decided_role=decided_role,
            decided_at=now,
            policy_version=policy.version,
            figures=step.figures or self._figures(step.level, policy, decided_role, None),
            reason=reason,
        )
        self._close_round(StepStatus.SUPERSEDED)
        change_request = step.change_request
        if change_request:
            discarded, self.pending_change = self.pending_change, None
            self.record(self._changed("change_discarded", by, discarded.fields() if discarded else (), now, reason))
        else:
            self.status = OrderStatus.RETURNED
        self.record(
            OrderRejected(
                order_id=self.id,
                order_number=self.number,
                owner_id=self.owner_id,
                level=step.level.value,
                rejected_by=by,
                role=decided_role,
                reason=reason,
                change_request=change_request,
                rejected_at=now,
            )
        )
        return self._step(step.level)

    def recheck_credit(self, credit: CreditFigures, now: datetime) -> bool:
        """A credit limit or payment changed: a held order within the limit goes back to finance."""
        step = self._open_step(StepStatus.ON_HOLD)
        if step is None or not credit.within_limit:
            return False
        self._replace(step, status=StepStatus.PENDING, figures=credit.as_dict(), entered_at=now)
        if self.status == OrderStatus.CREDIT_HOLD:
            self.status = OrderStatus.PENDING_APPROVAL
        self.version += 1  # a state change without an event still changes the ETag
        return True

    def amend(self, amendment: Amendment, *, by: str, now: datetime, policy: DiscountAuthority) -> str:
        """Before approval: amend and restart approval. After approval, before shipping: a change request."""
        if not amendment.fields():
            raise DomainError("the change changes nothing")
        if amendment.lines is not None:
            check_lines(amendment.lines)
        if self.status in BEFORE_APPROVAL:
            self._apply(amendment)
            self._close_round(StepStatus.SUPERSEDED)
            self.status = OrderStatus.PENDING_APPROVAL
            self.record(self._changed("amended", by, amendment.fields(), now, amendment.reason))
            self._start_round(now, policy, change_request=False)
            return "amended"
        if self.status in CHANGEABLE_AFTER_APPROVAL:
            if self.pending_change is not None:
                raise InvalidTransition("a change request is already waiting for approval")
            self._check_change_after_approval(amendment)
            self.pending_change = replace(amendment, requested_by=by)
            self.record(self._changed("change_requested", by, amendment.fields(), now, amendment.reason))
            self._start_round(now, policy, change_request=True)
            return "change_requested"
        raise InvalidTransition(f"a {self.status} order cannot be changed")

    def _check_change_after_approval(self, change: Amendment) -> None:
        """What is on a shipment, invoiced or paid stays: the change may only touch the rest.

        Lines keep their numbers (a changed order lists its lines in the same order). A line with
        quantities on shipments keeps its product, price and discount and cannot drop below them;
        the total cannot drop below what is invoiced or paid; a new delivery address needs something
        still to ship. Everything refused is named in one 409.
        """
        refused: list[str] = []
        on_shipments = self.quantities_on_shipments()
        lines = list(change.lines) if change.lines is not None else self.lines
        if change.lines is not None:
            new = {line.line_no: line for line in change.lines}
            for line in self.lines:
                committed = on_shipments[line.line_no]
                if committed <= 0:
                    continue
                changed = new.get(line.line_no)
                if changed is None:
                    refused.append(f"line {line.line_no} has {committed} on shipments and cannot be removed")
                elif (changed.sku, changed.unit_price, changed.discount_pct) != (
                    line.sku,
                    line.unit_price,
                    line.discount_pct,
                ):
                    refused.append(
                        f"line {line.line_no} has {committed} on shipments: its product, price and discount stay"
                    )
                elif changed.quantity < committed:
                    refused.append(f"line {line.line_no} cannot go below the {committed} already on shipments")
            total = money(sum((line.amount for line in change.lines), Decimal(0)))
            invoiced = sum((i.amount for i in self.invoices), Decimal(0))
            if total < invoiced:
                refused.append(f"the new total {total} is below the {invoiced} already invoiced")
            if total < self.paid_amount:
                refused.append(f"the new total {total} is below the {self.paid_amount} already paid")
        if change.delivery_address is not None:
            shipped = self._quantities_in(ShipmentStatus.SHIPPED, ShipmentStatus.DELIVERED)
            if all(line.quantity <= shipped.get(line.line_no, Decimal(0)) for line in lines):
                refused.append("everything has shipped: the delivery address can no longer change")
        if refused:
            raise InvalidTransition("the change cannot be requested: " + "; ".join(refused))

    # -- fulfilment ---------------------------------------------------------------------------

    def remaining_quantities(self) -> dict[int, Decimal]:
        """Per line, the quantity not yet on any shipment."""
        on_shipments = self.quantities_on_shipments()
        return {line.line_no: line.quantity - on_shipments[line.line_no] for line in self.lines}

    def quantities_on_shipments(self) -> dict[int, Decimal]:
        """Per line, the quantity on shipments, whatever their status."""
        return self._quantities_in(*ShipmentStatus)

    def _quantities_in(self, *statuses: ShipmentStatus) -> dict[int, Decimal]:
        done = {line.line_no: Decimal(0) for line in self.lines}
        for shipment in self.shipments:
            if shipment.status in statuses:
                for item in shipment.items:
                    done[item.line_no] += item.quantity
        return done

    def release_shipment(
        self,
        shipment_id: uuid.UUID,
        items: list[tuple[int, Decimal]],
        *,
        now: datetime,
        carrier: str | None = None,
        expected_delivery_date: str | None = None,
    ) -> Shipment:
        """Release (part of) the order to the warehouse as one shipment."""
        self._check_shippable()
        if not items:
            raise DomainError("a shipment needs at least one item")
        left = self.remaining_quantities()
        seen: set[int] = set()
        for line_no, quantity in items:
            if line_no not in left:
                raise DomainError(f"the order has no line {line_no}")
            if line_no in seen:
                raise DomainError(f"line {line_no} appears twice in the shipment")
            seen.add(line_no)
            if quantity <= 0:
                raise DomainError(f"line {line_no}: the quantity must be positive")
            if quantity > left[line_no]:
                raise DomainError(f"line {line_no}: only {left[line_no]} left to ship")
        shipment = Shipment(
            id=shipment_id,
            items=tuple(ShipmentItem(line_no=n, quantity=q) for n, q in items),
            status=ShipmentStatus.RELEASED,
            created_at=now,
            carrier=carrier,
            expected_delivery_date=expected_delivery_date or self.promised_delivery_date,
        )
        self.shipments.append(shipment)
        self.version += 1
        return shipment

    def pick_shipment(self, shipment_id: uuid.UUID, now: datetime) -> Shipment:
        shipment = self._shipment(shipment_id)
        if shipment.status != ShipmentStatus.RELEASED:
            raise InvalidTransition(f"a {shipment.status} shipment cannot be picked")
        self.version += 1
        return self._put_shipment(replace(shipment, status=ShipmentStatus.PICKED, picked_at=now))

    def ship_shipment(
        self,
        shipment_id: uuid.UUID,
        *,
        now: datetime,
        carrier: str | None = None,
        tracking_number: str | None = None,
        serial_numbers: dict[int, tuple[str, ...]] | None = None,
        expected_delivery_date: str | None = None,
    ) -> Shipment:
        shipment = self._shipment(shipment_id)
        if shipment.status not in (ShipmentStatus.RELEASED, ShipmentStatus.PICKED):
            raise InvalidTransition(f"a {shipment.status} shipment cannot be shipped")
        serial_numbers = serial_numbers or {}
        unknown = set(serial_numbers) - {item.line_no for item in shipment.items}
        if unknown:
            raise DomainError(f"serial numbers for lines not on this shipment: {sorted(unknown)}")
        items = tuple(
            replace(item, serial_numbers=tuple(serial_numbers.get(item.line_no, item.serial_numbers)))
            for item in shipment.items
        )
        shipment = self._put_shipment(
            replace(
                shipment,
                items=items,
                status=ShipmentStatus.SHIPPED,
                shipped_at=now,
                carrier=carrier or shipment.carrier,
                tracking_number=tracking_number or shipment.tracking_number,
                expected_delivery_date=expected_delivery_date or shipment.expected_delivery_date,
            )
        )
        lines = {line.line_no: line for line in self.lines}
        self.record(
            OrderShipped(
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id,
                shipment_id=shipment.id,
                carrier=shipment.carrier,
                tracking_number=shipment.tracking_number,
                items=tuple(
                    ShippedItem(
                        line_no=item.line_no,
                        sku=lines[item.line_no].sku,
                        quantity=item.quantity,
                        serial_numbers=item.serial_numbers,
                    )
                    for item in shipment.items
                ),
                expected_delivery_date=shipment.expected_delivery_date,
                shipped_at=now,
            )
        )
        return shipment

    def deliver_shipment(self, shipment_id: uuid.UUID, now: datetime) -> Shipment:
        """A shipment arrived; the last quantity delivered records ``order.delivered`` (once)."""
        shipment = self._shipment(shipment_id)
        if shipment.status != ShipmentStatus.SHIPPED:
            raise InvalidTransition(f"a {shipment.status} shipment cannot be delivered")
        shipment = self._put_shipment(replace(shipment, status=ShipmentStatus.DELIVERED, delivered_at=now))
        if self._everything_delivered():
            self._delivered(now)
        else:
            self.status = OrderStatus.PARTIALLY_DELIVERED
            self.version += 1
        return shipment

    def deliver_shortcut(self, now: datetime, serial_numbers: dict[int, tuple[str, ...]] | None = None) -> None:
        """SHORTCUT (platform issue): the rest of a released order ships and arrives at once.

        Kept for the thin flow's ``POST /v1/orders/{id}/deliver``; it goes through a real
        shipment, so the order must be approved (and prepaid when its terms say so).
        """
        left = [(line_no, quantity) for line_no, quantity in self.remaining_quantities().items() if quantity > 0]
        shipment = self.release_shipment(uuid.uuid4(), left, now=now)
        self.ship_shipment(shipment.id, now=now, serial_numbers=serial_numbers)
        self.deliver_shipment(shipment.id, now)

    def delay(self, *, promised_date: str, reason: str, now: datetime, shipment_id: uuid.UUID | None = None) -> None:
        """A new delivery promise, with the reason (``order.delayed``)."""
        if self.status in CLOSED:
            raise InvalidTransition(f"a {self.status} order cannot be delayed")
        if not reason.strip():
            raise DomainError("a delay needs a reason")
        previous = self.promised_delivery_date
        if shipment_id is not None:
            shipment = self._shipment(shipment_id)
            if shipment.status == ShipmentStatus.DELIVERED:
                raise InvalidTransition("a delivered shipment cannot be delayed")
            previous = shipment.expected_delivery_date or previous
            self._put_shipment(replace(shipment, expected_delivery_date=promised_date))
        if not self.promised_delivery_date or promised_date > self.promised_delivery_date:
            self.promised_delivery_date = promised_date
        self.record(
            OrderDelayed(
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id,
                shipment_id=shipment_id,
                previous_date=previous,
                promised_date=promised_date,
                reason=reason,
            )
        )

    def cancel(self, *, by: str, reason: str, now: datetime) -> None:
        if self.status in CLOSED:
            raise InvalidTransition(f"a {self.status} order cannot be cancelled")
        if self._has_shipped():
            raise InvalidTransition("an order with shipped goods cannot be cancelled")
        if not reason.strip():
            raise DomainError("a cancellation needs a reason")
        self._close_round(StepStatus.SUPERSEDED)
        self.pending_change = None
        self.status = OrderStatus.CANCELLED
        self.cancelled_reason = reason
        self.closed_at = now
        self.record(
            OrderCancelled(
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id,
                owner_id=self.owner_id,
                reason=reason,
                cancelled_by=by,
                cancelled_at=now,
            )
        )

    def contract_terminated(self, contract_number: str, reason: str, *, now: datetime) -> bool:
        """The contract ended early: the order is cancelled unless goods have shipped or it is closed.

        An order with shipped goods stays, to be delivered, invoiced and paid for what was shipped.
        False when there is nothing to cancel (also when the same termination arrives again).
        """
        if self.status in CLOSED or self._has_shipped():
            return False
        self.cancel(by="system", reason=f"contract {contract_number} terminated: {reason}", now=now)
        return True

    # -- payments and invoices ----------------------------------------------------------------

    def receive_payment(
        self, payment_id: uuid.UUID, amount: Decimal, *, now: datetime, reference: str | None = None
    ) -> bool:
        """Money received against the order; False when this payment was already recorded."""
        if any(p.id == payment_id for p in self.payments):
            return False
        if self.status == OrderStatus.CANCELLED:
            raise InvalidTransition("a cancelled order takes no payments")
        if amount <= 0:
            raise DomainError("a payment must be positive")
        if amount > self.outstanding_amount:
            raise Overpayment(self, amount)
        self.payments.append(Payment(id=payment_id, amount=amount, received_at=now, reference=reference))
        self.paid_amount += amount
        self.record(
            PaymentReceived(
                payment_id=payment_id,
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id,
                currency=self.currency,
                amount=amount,
                paid_amount=self.paid_amount,
                outstanding_amount=self.outstanding_amount,
                reference=reference,
                received_at=now,
            )
        )
        if self.status == OrderStatus.AWAITING_PREPAYMENT and self.paid_amount >= self.prepayment_required:
            self.status = OrderStatus.RELEASED
        self._complete_if_paid(now)
        return True

    def issue_invoice(self, number: str, amount: Decimal, *, issued_at: datetime, due_date: str | None) -> bool:
        """An invoice against the order; False when this invoice number was already recorded."""
        if any(i.number == number for i in self.invoices):
            return False
        if self.status in BEFORE_APPROVAL or self.status == OrderStatus.CANCELLED:
            raise InvalidTransition(f"a {self.status} order cannot be invoiced")
        if amount <= 0:
            raise DomainError("an invoice must be positive")
        invoiced = sum((i.amount for i in self.invoices), Decimal(0))
        if invoiced + amount > self.total_amount:
            raise DomainError(f"invoices would exceed the order total ({invoiced} already invoiced)")
        self.invoices.append(Invoice(number=number, amount=amount, issued_at=issued_at, due_date=due_date))
        self.record(
            InvoiceIssued(
                invoice_number=number,
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id,
                currency=self.currency,
                amount=amount,
                issued_at=issued_at,
                due_date=due_date,
            )
        )
        return True

    # -- internals ----------------------------------------------------------------------------

    def _start_round(self, now: datetime, policy: DiscountAuthority, *, change_request: bool) -> None:
        self.approval_round += 1
        lines = self.pending_change.lines if self.pending_change and self.pending_change.lines else self.lines
        total = self._amended_total() if change_request else self.total_amount
        discount = effective_discount_pct(lines, total)
        common = {"round": self.approval_round, "change_request": change_request, "policy_version": policy.version}
        steps = [
            ApprovalStep(level=Level.MANAGER, role=SALES_MANAGER, status=StepStatus.PENDING, entered_at=now, **common)
        ]
        owner = policy.level_of(self.owner_role) or policy.levels[0]
        required = policy.required_level(discount)
        figures = {
            "discount_pct": str(discount),
            "owner_role": owner.role,
            "owner_authority_pct": str(owner.max_discount_pct),
        }
        if owner.covers(discount):
            rule = f"discount {discount}% is within the owner's authority ({owner.role} <= {owner.max_discount_pct}%)"
            steps.append(self._skipped(Level.DISCOUNT, required.role, rule, figures, now, common))
        elif required.role == SALES_MANAGER:
            rule = (
                f"discount {discount}% is within the sales manager's authority "
                f"(<= {required.max_discount_pct}%), covered by the sales manager level"
            )
            steps.append(self._skipped(Level.DISCOUNT, required.role, rule, figures, now, common))
        else:
            limit = "no limit" if required.max_discount_pct is None else f"<= {required.max_discount_pct}%"
            rule = f"discount {discount}% exceeds {owner.role} authority; needs {required.role} ({limit})"
            steps.append(
                ApprovalStep(
                    level=Level.DISCOUNT,
                    role=required.role,
                    status=StepStatus.WAITING,
                    rule=rule,
                    figures=figures,
                    **common,
                )
            )
        steps.append(ApprovalStep(level=Level.FINANCE, role=FINANCE, status=StepStatus.WAITING, **common))
        self.approvals.extend(steps)

    @staticmethod
    def _skipped(level: Level, role: str, rule: str, figures: dict, now: datetime, common: dict) -> ApprovalStep:
        return ApprovalStep(
            level=level, role=role, status=StepStatus.SKIPPED, rule=rule, figures=figures, decided_at=now, **common
        )

    def _advance(self, now: datetime, credit: CreditFigures) -> None:
        waiting = next((s for s in self.current_steps if s.status == StepStatus.WAITING), None)
        if waiting is None:
            self._approved(now)
            return
        if waiting.level == Level.FINANCE and not credit.within_limit:
            self._hold(waiting, credit, now)
            return
        figures = credit.as_dict() if waiting.level == Level.FINANCE else waiting.figures
        self._replace(waiting, status=StepStatus.PENDING, entered_at=now, figures=figures)

    def _hold(self, step: ApprovalStep, credit: CreditFigures, now: datetime) -> None:
        self._replace(step, status=StepStatus.ON_HOLD, figures=credit.as_dict(), entered_at=now)
        if not step.change_request:
            self.status = OrderStatus.CREDIT_HOLD
        self.version += 1

    def _approved(self, now: datetime) -> None:
        last = self.current_steps[-1]
        change_request = last.change_request
        if change_request and self.pending_change is not None:
            change, self.pending_change = self.pending_change, None
            self._apply(change)
            self.record(self._changed("change_applied", change.requested_by or "", change.fields(), now, change.reason))
        else:
            self.approved_at = now
        if self.status in BEFORE_APPROVAL or self.status in APPROVED_UNSHIPPED:
            paid_enough = self.paid_amount >= self.prepayment_required
            self.status = OrderStatus.RELEASED if paid_enough else OrderStatus.AWAITING_PREPAYMENT
        self.record(
            OrderApproved(
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id,
                owner_id=self.owner_id,
                currency=self.currency,
                total_amount=self.total_amount,
                approval_round=self.approval_round,
                change_request=change_request,
                policy_version=last.policy_version or "",
                approved_by=last.decided_by or "",
                approved_at=now,
            )
        )
        if change_request and self.shipments and self._everything_delivered():
            # The change dropped the undelivered rest: the order is now delivered (recorded once).
            self._delivered(now)

    def _check_approver(
        self, step: ApprovalStep, by: str, roles: frozenset[str], policy: DiscountAuthority, region: str | None
    ) -> None:
        if by == self.owner_id:
            raise NotAnApprover("nobody approves their own order")
        director_only = roles.isdisjoint({ADMIN, MARKETING_DIRECTOR})
        if step.role == REGIONAL_DIRECTOR and director_only and region and self.region and region != self.region:
            raise NotAnApprover(f"a regional director decides for their own region ({self.region} is not {region})")
        if ADMIN in roles or step.role in roles:
            return
        if step.level == Level.DISCOUNT:
            authority = policy.authority_of(roles)
            needed = policy.level_of(step.role)
            if (
                authority is not None
                and needed is not None
                and policy.levels.index(authority) >= policy.levels.index(needed)
            ):
                return
        raise NotAnApprover(f"the {step.level} level needs the role {step.role}")

    @staticmethod
    def _deciding_role(step: ApprovalStep, roles: frozenset[str], policy: DiscountAuthority) -> str:
        if step.role in roles:
            return step.role
        if step.level == Level.DISCOUNT:
            authority = policy.authority_of(roles)
            if authority is not None:
                return authority.role
        return ADMIN

    def _figures(
        self, level: Level, policy: DiscountAuthority, role: str, credit: CreditFigures | None
    ) -> dict[str, str]:
        lines = self.pending_change.lines if self.pending_change and self.pending_change.lines else self.lines
        total = self._amended_total() if self.pending_change else self.total_amount
        if level == Level.FINANCE and credit is not None:
            return {**credit.as_dict(), "payment_terms": self._amended_terms()}
        discount = effective_discount_pct(lines, total)
        figures = {"total_amount": str(total), "currency": self.currency, "discount_pct": str(discount)}
        if level == Level.DISCOUNT:
            level_of = policy.level_of(role)
            figures["approver_authority_pct"] = str(level_of.max_discount_pct) if level_of else "unlimited"
        else:
            figures["lines"] = str(len(lines))
        return figures

    def _amended_total(self) -> Decimal:
        change = self.pending_change
        if change is None or change.lines is None:
            return self.total_amount
        # Amended lines carry their own amounts; the order keeps no header discount apart from them.
        return money(sum((line.amount for line in change.lines), Decimal(0)))

    def _amended_terms(self) -> str:
        return (self.pending_change.payment_terms if self.pending_change else None) or self.payment_terms

    def _apply(self, change: Amendment) -> None:
        if change.lines is not None:
            self.lines = list(change.lines)
            self.total_amount = money(sum((line.amount for line in change.lines), Decimal(0)))
        for name in ("payment_terms", "payment_method", "delivery_address", "requested_delivery_date"):
            value = getattr(change, name)
            if value is not None:
                setattr(self, name, value)
        if change.requested_delivery_date is not None:
            self.promised_delivery_date = change.requested_delivery_date

    def _changed(self, kind: str, by: str, fields: tuple[str, ...], now: datetime, reason: str | None) -> OrderChanged:
        return OrderChanged(
            order_id=self.id,
            order_number=self.number,
            kind=kind,
            changed_by=by,
            fields=fields,
            total_amount=self.total_amount,
            reason=reason,
            changed_at=now,
        )

    def _open_step(self, status: StepStatus) -> ApprovalStep | None:
        return next((s for s in self.current_steps if s.status == status), None)

    def _step(self, level: Level) -> ApprovalStep:
        return next(s for s in self.current_steps if s.level == level)

    def _replace(self, step: ApprovalStep, **changes) -> None:
        index = next(i for i, s in enumerate(self.approvals) if s is step)
        self.approvals[index] = replace(step, **changes)

    def _close_round(self, status: StepStatus) -> None:
        for step in self.current_steps:
            if step.status in (StepStatus.WAITING, StepStatus.PENDING, StepStatus.ON_HOLD):
                self._replace(step, status=status)

    def _check_shippable(self) -> None:
        if self.status == OrderStatus.AWAITING_PREPAYMENT:
            raise InvalidTransition(
                f"the payment terms ask for a prepayment of {self.prepayment_required} {self.currency}; "
                f"{self.paid_amount} received"
            )
        if self.status not in SHIPPABLE:
            raise InvalidTransition(f"a {self.status} order cannot be shipped")
        if self.pending_change is not None:
            raise InvalidTransition("a change request is waiting for approval")

    def _shipment(self, shipment_id: uuid.UUID) -> Shipment:
        for shipment in self.shipments:
            if shipment.id == shipment_id:
                return shipment
        raise NotFound(f"no shipment {shipment_id} on order {self.number}")

    def _put_shipment(self, shipment: Shipment) -> Shipment:
        index = next(i for i, s in enumerate(self.shipments) if s.id == shipment.id)
        self.shipments[index] = shipment
        return shipment

    def _has_shipped(self) -> bool:
        return any(s.status in (ShipmentStatus.SHIPPED, ShipmentStatus.DELIVERED) for s in self.shipments)

    def _everything_delivered(self) -> bool:
        done = self._quantities_in(ShipmentStatus.DELIVERED)
        return all(done[line.line_no] >= line.quantity for line in self.lines)

    def _delivered(self, now: datetime) -> None:
        if self.status in (OrderStatus.DELIVERED, OrderStatus.COMPLETED):
            return  # order.delivered is recorded once
        serials: dict[int, list[str]] = {line.line_no: [] for line in self.lines}
        for shipment in self.shipments:
            for item in shipment.items:
                serials[item.line_no].extend(item.serial_numbers)
        self.lines = [replace(line, serial_numbers=tuple(serials[line.line_no])) for line in self.lines]
        if self.pending_change is not None:
            # Nothing is left for a waiting change request to change: its round ends unapproved.
            discarded, self.pending_change = self.pending_change, None
            self._close_round(StepStatus.SUPERSEDED)
            reason = "everything was delivered before the change was approved"
            self.record(self._changed("change_discarded", "system", discarded.fields(), now, reason))
        self.status = OrderStatus.DELIVERED
        self.delivered_at = now
        self.record(
            OrderDelivered(
                order_id=self.id,
                order_number=self.number,
                contract_id=self.contract_id,
                customer_id=self.customer_id,
                customer_name=self.customer_name,
                contact=self.contact,
                owner_id=self.owner_id,
                items=tuple(
                    DeliveredItem(
                        line_no=line.line_no,
                        sku=line.sku,
                        description=line.description,
                        quantity=line.quantity,
                        serial_numbers=line.serial_numbers,
                        warranty_months=line.warranty_months,
                    )
                    for line in self.lines
                ),
                delivered_at=now,
            )
        )
        self._complete_if_paid(now)

    def _complete_if_paid(self, now: datetime) -> None:
        if self.status == OrderStatus.DELIVERED and self.paid_amount >= self.total_amount:
            self.status = OrderStatus.COMPLETED
            self.closed_at = now
            self.version += 1
