"""Order commands. Each opens the unit of work and ends with an explicit commit.

``principal=None`` is the system itself (the ERP's verified callbacks, consumers): no owner
scoping. ERP callbacks first claim their ``webhook-id`` in the same transaction, so a replay
has its effect once.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.orders.config import get_settings
from services.orders.db import CreditLimits, OrderRepository, Reports, claim_webhook
from services.orders.domain import Amendment, CreditFigures, Order, OrderLine, OrderStatus
from shared.api import DEFAULT_CURRENCY
from shared.auth import Principal
from shared.domain import NotFound
from shared.events import ContactInfo
from shared.pagination import PageParams
from shared.policies import discount_authority
from shared.uow import UnitOfWork

SALES_ROLES = ("marketing_director", "regional_director", "sales_manager", "sales_rep")


@dataclass(frozen=True)
class EnterOrder:
    customer_id: str
    customer_name: str
    currency: str
    lines: list[OrderLine]
    total_amount: Decimal
    payment_terms: str
    delivery_address: str
    payment_method: str | None = None
    requested_delivery_date: str | None = None
    contact: ContactInfo | None = None
    region: str | None = None


def _owner_role(principal: Principal) -> str:
    """The entering user's highest sales role: their discount authority as the order's owner."""
    return next((role for role in SALES_ROLES if role in principal.roles), "sales_rep")


async def _credit_limit(uow: UnitOfWork, customer_id: str, currency: str) -> tuple[Decimal, str]:
    """The customer's limit in ``currency`` and where it comes from."""
    row = await CreditLimits(uow).get(customer_id)
    if row is None:
        return get_settings().default_credit_limit, "default"
    if row.currency != currency:
        # Not comparable without an exchange rate: finance decides once the ERP sends a limit in this currency.
        return Decimal(0), f"customer limit is in {row.currency}, not {currency}"
    return row.credit_limit, "customer"


async def credit_figures(uow: UnitOfWork, order: Order) -> CreditFigures:
    """The customer's credit limit and outstanding balance (other orders) against this order.

    Serialised per customer until commit, so two orders approved at once cannot both fit a limit
    that only one of them fits.
    """
    await OrderRepository(uow).lock_customer_credit(order.customer_id)
    limit, source = await _credit_limit(uow, order.customer_id, order.currency)
    outstanding = await OrderRepository(uow).outstanding_balance(order.customer_id, order.currency, excluding=order.id)
    return CreditFigures(limit, outstanding, order.credit_basis(), source)


@dataclass(frozen=True)
class CreditPosition:
    customer_id: str
    currency: str
    credit_limit: Decimal
    limit_source: str
    outstanding_balance: Decimal
    orders_on_credit_hold: int

    @property
    def available(self) -> Decimal:
        return self.credit_limit - self.outstanding_balance


async def credit_position(customer_id: str, uow: UnitOfWork, *, currency: str | None = None) -> CreditPosition:
    """What finance's check would start from: the limit, what approved orders still owe, what is left."""
    async with uow:
        if currency is None:
            row = await CreditLimits(uow).get(customer_id)
            currency = row.currency if row is not None else DEFAULT_CURRENCY
        limit, source = await _credit_limit(uow, customer_id, currency)
        orders = OrderRepository(uow)
        return CreditPosition(
            customer_id=customer_id,
            currency=currency,
            credit_limit=limit,
            limit_source=source,
            outstanding_balance=await orders.outstanding_balance(customer_id, currency),
            orders_on_credit_hold=await orders.held_count(customer_id),
        )


async def enter_order(cmd: EnterOrder, principal: Principal, uow: UnitOfWork) -> Order:
    async with uow:
        orders = OrderRepository(uow)
        now = datetime.now(UTC)
        order = Order.enter(
            policy=discount_authority(),
            id=uuid.uuid4(),
            number=await orders.next_number(now),
            owner_id=principal.sub,
            owner_role=_owner_role(principal),
            created_at=now,
            **cmd.__dict__,
        )
        await orders.add(order)
        await uow.commit()
    return order


async def get_order(order_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Order:
    async with uow:
        return await OrderRepository(uow).get_visible(order_id, principal)


async def list_orders(
    principal: Principal,
    uow: UnitOfWork,
    page: PageParams,
    *,
    contract_id: uuid.UUID | None = None,
    status: OrderStatus | None = None,
    customer_id: str | None = None,
) -> tuple[list[Order], str | None]:
    """The caller's visible orders (a rep: their own), filtered, in (created_at, id) order."""
    filters = {"contract_id": contract_id, "status": status.value if status else None, "customer_id": customer_id}
    async with uow:
        return await OrderRepository(uow).list(principal, page, filters=filters)


async def approval_queue(principal: Principal, uow: UnitOfWork, page: PageParams) -> tuple[list[Order], str | None]:
    """The orders waiting for a decision by one of the caller's roles."""
    async with uow:
        region = principal.region if "regional_director" in principal.roles and not principal.is_admin else None
        return await OrderRepository(uow).approval_queue(principal.roles, page, region=region)


async def _change(
    order_id: uuid.UUID,
    principal: Principal | None,
    uow: UnitOfWork,
    change: Callable[[Order, datetime], Awaitable[object] | object],
    *,
    if_match: int | None = None,
) -> Order:
    async with uow:
        orders = OrderRepository(uow)
        order = await orders.get_for_change(order_id, principal, if_match=if_match)
        result = change(order, datetime.now(UTC))
        if inspect.isawaitable(result):
            await result
        await orders.save(order)
        await uow.commit()
    return order


async def approve_order(
    order_id: uuid.UUID, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Order:
    async def approve(order: Order, now: datetime) -> None:
        credit = await credit_figures(uow, order)
        order.approve(
            by=principal.sub,
            roles=principal.roles,
            now=now,
            policy=discount_authority(),
            credit=credit,
            region=principal.region,
        )

    return await _change(order_id, principal, uow, approve, if_match=if_match)


async def reject_order(
    order_id: uuid.UUID, principal: Principal, reason: str, uow: UnitOfWork, *, if_match: int | None = None
) -> Order:
    def reject(order: Order, now: datetime) -> None:
        order.reject(
            by=principal.sub,
            roles=principal.roles,
            reason=reason,
            now=now,
            policy=discount_authority(),
            region=principal.region,
        )

    return await _change(order_id, principal, uow, reject, if_match=if_match)


async def amend_order(
    order_id: uuid.UUID, amendment: Amendment, principal: Principal, uow: UnitOfWork, *, if_match: int | None = None
) -> Order:
    def amend(order: Order, now: datetime) -> None:
        order.amend(amendment, by=principal.sub, now=now, policy=discount_authority())

    return await _change(order_id, principal, uow, amend, if_match=if_match)


async def cancel_order(
    order_id: uuid.UUID, principal: Principal, reason: str, uow: UnitOfWork, *, if_match: int | None = None
) -> Order:
    return await _change(
        order_id, principal, uow, lambda o, now: o.cancel(by=principal.sub, reason=reason, now=now), if_match=if_match
    )


async def release_shipment(
    order_id: uuid.UUID,
    items: list[tuple[int, Decimal]],
    principal: Principal,
    uow: UnitOfWork,
    *,
    carrier: str | None = None,
    expected_delivery_date: str | None = None,
    if_match: int | None = None,
) -> tuple[Order, uuid.UUID]:
    shipment_id = uuid.uuid4()

    def release(order: Order, now: datetime) -> None:
        order.release_shipment(
            shipment_id, items, now=now, carrier=carrier, expected_delivery_date=expected_delivery_date
        )

    return await _change(order_id, principal, uow, release, if_match=if_match), shipment_id


async def pick_shipment(order_id: uuid.UUID, shipment_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Order:
    return await _change(order_id, principal, uow, lambda o, now: o.pick_shipment(shipment_id, now))


async def ship_shipment(
    order_id: uuid.UUID,
    shipment_id: uuid.UUID,
    principal: Principal | None,
    uow: UnitOfWork,
    *,
    carrier: str | None = None,
    tracking_number: str | None = None,
    serial_numbers: dict[int, tuple[str, ...]] | None = None,
    expected_delivery_date: str | None = None,
) -> Order:
    def ship(order: Order, now: datetime) -> None:
        order.ship_shipment(
            shipment_id,
            now=now,
            carrier=carrier,
            tracking_number=tracking_number,
            serial_numbers=serial_numbers,
            expected_delivery_date=expected_delivery_date,
        )

    return await _change(order_id, principal, uow, ship)


async def deliver_shipment(
    order_id: uuid.UUID, shipment_id: uuid.UUID, principal: Principal | None, uow: UnitOfWork
) -> Order:
    return await _change(order_id, principal, uow, lambda o, now: o.deliver_shipment(shipment_id, now))


async def delay_order(
    order_id: uuid.UUID,
    promised_date: str,
    reason: str,
    principal: Principal,
    uow: UnitOfWork,
    *,
    shipment_id: uuid.UUID | None = None,
) -> Order:
    return await _change(
        order_id,
        principal,
        uow,
        lambda o, now: o.delay(promised_date=promised_date, reason=reason, now=now, shipment_id=shipment_id),
    )


async def deliver_order_shortcut(
    order_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    serial_numbers: dict[int, tuple[str, ...]] | None = None,
    if_match: int | None = None,
) -> Order:
    """SHORTCUT (platform issue): the rest of an approved order ships and is delivered at once."""
    return await _change(
        order_id, principal, uow, lambda o, now: o.deliver_shortcut(now, serial_numbers), if_match=if_match
    )


async def _recheck_holds(uow: UnitOfWork, customer_id: str, now: datetime) -> None:
    """Orders on credit hold for this customer go back to finance when they now fit the limit."""
    orders = OrderRepository(uow)
    for held in await orders.held_for_customer(customer_id):
        if held.recheck_credit(await credit_figures(uow, held), now):
            await orders.save(held)


async def receive_payment(
    order_id: uuid.UUID,
    amount: Decimal,
    principal: Principal | None,
    uow: UnitOfWork,
    *,
    payment_id: uuid.UUID | None = None,
    reference: str | None = None,
) -> Order:
    async def receive(order: Order, now: datetime) -> None:
        order.receive_payment(payment_id or uuid.uuid4(), amount, now=now, reference=reference)

    async with uow:
        orders = OrderRepository(uow)
        order = await orders.get_for_change(order_id, principal)
        await receive(order, datetime.now(UTC))
        await orders.save(order)
        await _recheck_holds(uow, order.customer_id, datetime.now(UTC))
        await uow.commit()
    return order


async def issue_invoice(
    order_id: uuid.UUID,
    number: str,
    amount: Decimal,
    principal: Principal | None,
    uow: UnitOfWork,
    *,
    issued_at: datetime | None = None,
    due_date: str | None = None,
) -> Order:
    return await _change(
        order_id,
        principal,
        uow,
        lambda o, now: o.issue_invoice(number, amount, issued_at=issued_at or now, due_date=due_date),
    )


async def set_credit_limit(
    customer_id: str, limit: Decimal, currency: str, by: str, uow: UnitOfWork, *, webhook_id: str | None = None
) -> bool:
    """A new credit limit; held orders of the customer that now fit go back to finance."""
    async with uow:
        if webhook_id is not None and not await claim_webhook(uow, webhook_id, "credit_limit_changed"):
            return False
        now = datetime.now(UTC)
        await CreditLimits(uow).set(customer_id, limit, currency, by=by, now=now)
        await _recheck_holds(uow, customer_id, now)
        await uow.commit()
    return True


async def erp_callback(
    kind: str, webhook_id: str, order_number: str, uow: UnitOfWork, change: Callable[[Order, datetime], object]
) -> Order | None:
    """Apply a verified ERP callback to the order it names, once per ``webhook-id``.

    Returns None for a replay (already applied).
    """
    async with uow:
        if not await claim_webhook(uow, webhook_id, kind):
            return None
        orders = OrderRepository(uow)
        order = await orders.get_by_number(order_number)
        if order is None:
            raise NotFound(f"no order {order_number}")
        now = datetime.now(UTC)
        change(order, now)
        await orders.save(order)
        if kind == "payment_received":
            await _recheck_holds(uow, order.customer_id, now)
        await uow.commit()
    return order


# -- reports ---------------------------------------------------------------------------------


async def credit_holds(uow: UnitOfWork, page: PageParams) -> tuple[list[Order], str | None]:
    async with uow:
        return await OrderRepository(uow).credit_holds(page)


async def approval_cycle_times(uow: UnitOfWork, since: datetime, until: datetime) -> list:
    """Per level: decisions and seconds from entering the queue to the decision (time on credit hold excluded)."""
    async with uow:
        return await Reports(uow).approval_cycle_times(since, until)


async def on_time_delivery(uow: UnitOfWork, since: datetime, until: datetime):
    """Orders delivered in the period, and how many by the date the customer asked for."""
    async with uow:
        return await Reports(uow).on_time_delivery(since, until, get_settings().business_timezone)


async def receivables(uow: UnitOfWork, page: PageParams, *, customer_id: str | None = None) -> tuple[list, str | None]:
    """Open balances per customer and currency, invoiced ones aged by their invoices' due dates."""
    tz = get_settings().business_timezone
    async with uow:
        return await Reports(uow).receivables(datetime.now(ZoneInfo(tz)).date(), tz, page, customer_id=customer_id)
