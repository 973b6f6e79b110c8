"""HTTP routes of the orders service: orders, approvals, shipments, payments, credit limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from services.orders import handlers
from services.orders.api.schemas import (
    CreditLimitIn,
    CreditPositionRead,
    CycleTime,
    CycleTimes,
    Delay,
    DeliverOrder,
    InvoiceIn,
    OnTimeDelivery,
    OrderChange,
    OrderCreate,
    OrderRead,
    PaymentIn,
    Reason,
    Receivable,
    ShipmentCreate,
    ShipmentShip,
)
from services.orders.domain import Amendment, Order, OrderStatus
from shared.api import CurrencyCode, SafeStr
from shared.auth import (
    ADMIN,
    FINANCE,
    MARKETING_DIRECTOR,
    REGIONAL_DIRECTOR,
    SALES_MANAGER,
    SALES_REP,
    Principal,
    require_roles,
)
from shared.concurrency import set_etag
from shared.errors import Problem, problem_responses
from shared.events import ContactInfo
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/orders", tags=["orders"], route_class=IdempotentRoute)
approvals_router = APIRouter(prefix="/v1/approvals", tags=["approvals"])
credit_router = APIRouter(prefix="/v1/credit-limits", tags=["credit limits"])
reports_router = APIRouter(prefix="/v1/order-reports", tags=["reports"])

SALES = (SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, ADMIN)
APPROVERS = (SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, FINANCE, ADMIN)
Reader = Annotated[Principal, Depends(require_roles(*SALES, FINANCE))]
Seller = Annotated[Principal, Depends(require_roles(*SALES))]
Approver = Annotated[Principal, Depends(require_roles(*APPROVERS))]
# No warehouse role exists yet: sales managers run fulfilment by hand; the ERP calls /v1/erp/...
Fulfiller = Annotated[Principal, Depends(require_roles(SALES_MANAGER, ADMIN))]
Finance = Annotated[Principal, Depends(require_roles(FINANCE, ADMIN))]
Analyst = Annotated[
    Principal, Depends(require_roles(SALES_MANAGER, REGIONAL_DIRECTOR, MARKETING_DIRECTOR, FINANCE, ADMIN))
]
Uow = Annotated[UnitOfWork, Depends(get_uow)]

WRITE_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 412, 422)


def _read(order: Order, response: Response) -> OrderRead:
    set_etag(response, order.version)
    return OrderRead.model_validate(order)


@router.post("", status_code=201, response_model=OrderRead, responses=problem_responses(400, 401, 403, 409, 422))
async def create_order(body: OrderCreate, response: Response, principal: Seller, uow: Uow) -> OrderRead:
    """Enter an order by hand; it starts at the sales manager's approval. The caller owns it."""
    cmd = handlers.EnterOrder(
        customer_id=body.customer_id,
        customer_name=body.customer_name,
        contact=ContactInfo(**body.contact.model_dump()) if body.contact else None,
        region=body.region,
        currency=body.currency,
        lines=body.order_lines(),
        total_amount=body.total_amount,
        payment_terms=body.payment_terms,
        payment_method=body.payment_method,
        delivery_address=body.delivery_address,
        requested_delivery_date=body.requested_delivery_date.isoformat() if body.requested_delivery_date else None,
    )
    order = await handlers.enter_order(cmd, principal, uow)
    response.headers["Location"] = f"/v1/orders/{order.id}"
    return _read(order, response)


@router.get("", response_model=Page[OrderRead], responses=problem_responses(400, 401, 403))
async def list_orders(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    contract_id: Annotated[uuid.UUID | None, Query(description="The order entered from this contract")] = None,
    status: Annotated[OrderStatus | None, Query(description="Only orders in this status")] = None,
    customer_id: Annotated[SafeStr | None, Query(min_length=1, max_length=100, description="This customer")] = None,
) -> Page[OrderRead]:
    """Orders the caller may see (a sales rep: their own), oldest first; filters combine."""
    items, next_cursor = await handlers.list_orders(
        principal, uow, page, contract_id=contract_id, status=status, customer_id=customer_id
    )
    return paginated(request, response, [OrderRead.model_validate(o) for o in items], next_cursor)


@router.get("/{order_id}", response_model=OrderRead, responses=problem_responses(401, 403, 404))
async def get_order(order_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> OrderRead:
    return _read(await handlers.get_order(order_id, principal, uow), response)


@router.post("/{order_id}/changes", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def change_order(
    order_id: uuid.UUID, body: OrderChange, request: Request, response: Response, principal: Seller, uow: Uow
) -> OrderRead:
    """Before approval: amend the order and restart approval. After approval, until everything is
    delivered: a change request that runs its own approval round and applies when approved.
    Either way `order.changed` is emitted.

    Lines are numbered in the order given, so list existing lines first, in their order. After a
    shipment, a 409 names what cannot change: a shipped line's product, price and discount, a
    quantity below what is on shipments, a total below what is invoiced or paid, the address once
    everything has shipped."""
    amendment = Amendment(
        lines=tuple(body.order_lines()) if body.lines is not None else None,
        payment_terms=body.payment_terms,
        payment_method=body.payment_method,
        delivery_address=body.delivery_address,
        requested_delivery_date=body.requested_delivery_date.isoformat() if body.requested_delivery_date else None,
        reason=body.reason,
    )
    order = await handlers.amend_order(order_id, amendment, principal, uow, if_match=expected_version(request))
    return _read(order, response)


@router.post("/{order_id}/approve", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def approve_order(
    order_id: uuid.UUID, request: Request, response: Response, principal: Approver, uow: Uow
) -> OrderRead:
    """Approve the level the order is waiting at (403 when the caller's role is not that level's).

    At the finance level the credit check runs again: over the limit puts the order on credit hold."""
    order = await handlers.approve_order(order_id, principal, uow, if_match=expected_version(request))
    return _read(order, response)


@router.post("/{order_id}/reject", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def reject_order(
    order_id: uuid.UUID, body: Reason, request: Request, response: Response, principal: Approver, uow: Uow
) -> OrderRead:
    """Reject with a reason: the order returns to its owner (a change request is discarded)."""
    order = await handlers.reject_order(order_id, principal, body.reason, uow, if_match=expected_version(request))
    return _read(order, response)


@router.post("/{order_id}/cancel", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def cancel_order(
    order_id: uuid.UUID, body: Reason, request: Request, response: Response, principal: Seller, uow: Uow
) -> OrderRead:
    """Cancel before anything has shipped, with a reason (`order.cancelled`)."""
    order = await handlers.cancel_order(order_id, principal, body.reason, uow, if_match=expected_version(request))
    return _read(order, response)


@router.post("/{order_id}/shipments", status_code=201, response_model=OrderRead, responses=WRITE_PROBLEMS)
async def release_shipment(
    order_id: uuid.UUID, body: ShipmentCreate, request: Request, response: Response, principal: Fulfiller, uow: Uow
) -> OrderRead:
    """Release (part of) an approved, prepaid-as-agreed order to the warehouse as one shipment."""
    order, shipment_id = await handlers.release_shipment(
        order_id,
        [(item.line_no, item.quantity) for item in body.items],
        principal,
        uow,
        carrier=body.carrier,
        expected_delivery_date=body.expected_delivery_date.isoformat() if body.expected_delivery_date else None,
        if_match=expected_version(request),
    )
    response.headers["Location"] = f"/v1/orders/{order.id}/shipments/{shipment_id}"
    return _read(order, response)


@router.post("/{order_id}/shipments/{shipment_id}/pick", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def pick_shipment(
    order_id: uuid.UUID, shipment_id: uuid.UUID, response: Response, principal: Fulfiller, uow: Uow
) -> OrderRead:
    return _read(await handlers.pick_shipment(order_id, shipment_id, principal, uow), response)


@router.post("/{order_id}/shipments/{shipment_id}/ship", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def ship_shipment(
    order_id: uuid.UUID, shipment_id: uuid.UUID, body: ShipmentShip, response: Response, principal: Fulfiller, uow: Uow
) -> OrderRead:
    """The shipment left with its carrier and tracking number (`order.shipped`)."""
    order = await handlers.ship_shipment(
        order_id,
        shipment_id,
        principal,
        uow,
        carrier=body.carrier,
        tracking_number=body.tracking_number,
        serial_numbers={line.line_no: tuple(line.serial_numbers) for line in body.lines},
        expected_delivery_date=body.expected_delivery_date.isoformat() if body.expected_delivery_date else None,
    )
    return _read(order, response)


@router.post("/{order_id}/shipments/{shipment_id}/deliver", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def deliver_shipment(
    order_id: uuid.UUID, shipment_id: uuid.UUID, response: Response, principal: Fulfiller, uow: Uow
) -> OrderRead:
    """The shipment arrived; when everything on the order has, `order.delivered` is emitted once."""
    return _read(await handlers.deliver_shipment(order_id, shipment_id, principal, uow), response)


@router.post("/{order_id}/delay", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def delay_order(
    order_id: uuid.UUID, body: Delay, response: Response, principal: Fulfiller, uow: Uow
) -> OrderRead:
    """A new delivery promise with its reason (`order.delayed`)."""
    order = await handlers.delay_order(
        order_id, body.promised_date.isoformat(), body.reason, principal, uow, shipment_id=body.shipment_id
    )
    return _read(order, response)


@router.post("/{order_id}/payments", status_code=201, response_model=OrderRead, responses=WRITE_PROBLEMS)
async def receive_payment(
    order_id: uuid.UUID, body: PaymentIn, response: Response, principal: Finance, uow: Uow
) -> OrderRead:
    """Money received against the order (`payment.received`); it may release a prepayment hold."""
    order = await handlers.receive_payment(order_id, body.amount, principal, uow, reference=body.reference)
    return _read(order, response)


@router.post("/{order_id}/invoices", status_code=201, response_model=OrderRead, responses=WRITE_PROBLEMS)
async def issue_invoice(
    order_id: uuid.UUID, body: InvoiceIn, response: Response, principal: Finance, uow: Uow
) -> OrderRead:
    order = await handlers.issue_invoice(
        order_id,
        body.number,
        body.amount,
        principal,
        uow,
        due_date=body.due_date.isoformat() if body.due_date else None,
    )
    return _read(order, response)


@router.post("/{order_id}/deliver", response_model=OrderRead, responses=WRITE_PROBLEMS)
async def deliver_order(
    order_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Fulfiller,
    uow: Uow,
    body: Annotated[DeliverOrder | None, Body()] = None,
) -> OrderRead:
    """SHORTCUT (platform issue): the rest of an approved order ships and arrives at once.

    Prefer shipments (`/shipments`, pick, ship, deliver) or the ERP callbacks."""
    serials = {line.line_no: tuple(line.serial_numbers) for line in (body.lines if body else [])}
    order = await handlers.deliver_order_shortcut(
        order_id, principal, uow, serial_numbers=serials, if_match=expected_version(request)
    )
    return _read(order, response)


@approvals_router.get("", response_model=Page[OrderRead], responses=problem_responses(400, 401, 403))
async def approval_queue(
    request: Request,
    response: Response,
    principal: Approver,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    assignee: Annotated[Literal["me"], Query(description="Only `me`: the caller's queue, by role")] = "me",
) -> Page[OrderRead]:
    """Orders waiting for a decision at a level the caller's role decides (`pending_role`)."""
    items, next_cursor = await handlers.approval_queue(principal, uow, page)
    return paginated(request, response, [OrderRead.model_validate(o) for o in items], next_cursor)


@credit_router.get("/{customer_id}", response_model=CreditPositionRead, responses=problem_responses(400, 401, 403))
async def credit_position(
    customer_id: Annotated[SafeStr, Path(min_length=1, max_length=100)],
    principal: Analyst,
    uow: Uow,
    currency: Annotated[
        CurrencyCode | None, Query(description="Default: the limit's currency (CNY without a limit)")
    ] = None,
) -> CreditPositionRead:
    """A customer's credit position: limit, what its approved, unclosed orders still owe, and what is available.

    The balance is what finance's check adds an order to; a limit in another currency counts as 0."""
    position = await handlers.credit_position(customer_id, uow, currency=currency)
    return CreditPositionRead(
        customer_id=position.customer_id,
        currency=position.currency,
        credit_limit=position.credit_limit,
        limit_source=position.limit_source,
        outstanding_balance=position.outstanding_balance,
        available=position.available,
        orders_on_credit_hold=position.orders_on_credit_hold,
    )


@credit_router.put("/{customer_id}", status_code=204, responses=problem_responses(400, 401, 403, 422))
async def set_credit_limit(
    customer_id: Annotated[SafeStr, Path(min_length=1, max_length=100)],
    body: CreditLimitIn,
    principal: Finance,
    uow: Uow,
) -> Response:
    """Finance sets a customer's credit limit; held orders that now fit go back to finance."""
    await handlers.set_credit_limit(customer_id, Decimal(body.credit_limit), body.currency, principal.sub, uow)
    return Response(status_code=204)


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    if since.tzinfo is None or until.tzinfo is None:
        raise Problem(
            400, "Bad period", "since and until need a time zone (e.g. 2026-11-01T00:00:00Z).", slug="bad-period"
        )
    if since >= until:
        raise Problem(400, "Bad period", "since must be before until.", slug="bad-period")
    return since, until


Since = Annotated[datetime | None, Query(description="Start of the period (default: 30 days before until)")]
Until = Annotated[datetime | None, Query(description="End of the period, exclusive (default: now)")]


@reports_router.get("/approval-cycle-times", response_model=CycleTimes, responses=problem_responses(400, 401, 403))
async def approval_cycle_times(principal: Analyst, uow: Uow, since: Since = None, until: Until = None) -> CycleTimes:
    """Per approval level, for orders entered in the period: decisions, and seconds from queue to decision."""
    since, until = _period(since, until)
    rows = await handlers.approval_cycle_times(uow, since, until)
    levels = [
        CycleTime(level=r.level, decisions=r.decisions, avg_seconds=r.avg_s, p50_seconds=r.p50_s, max_seconds=r.max_s)
        for r in rows
    ]
    return CycleTimes(since=since, until=until, levels=levels)


@reports_router.get("/credit-holds", response_model=Page[OrderRead], responses=problem_responses(400, 401, 403))
async def credit_holds(
    request: Request,
    response: Response,
    principal: Analyst,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[OrderRead]:
    """Orders (and change requests) on credit hold, with the figures in their finance step."""
    items, next_cursor = await handlers.credit_holds(uow, page)
    return paginated(request, response, [OrderRead.model_validate(o) for o in items], next_cursor)


@reports_router.get("/on-time-delivery", response_model=OnTimeDelivery, responses=problem_responses(400, 401, 403))
async def on_time_delivery(principal: Analyst, uow: Uow, since: Since = None, until: Until = None) -> OnTimeDelivery:
    """Orders fully delivered in the period, and the share delivered by the customer's requested date."""
    since, until = _period(since, until)
    row = await handlers.on_time_delivery(uow, since, until)
    rate = (Decimal(row.on_time) / Decimal(row.with_promise)).quantize(Decimal("0.0001")) if row.with_promise else None
    return OnTimeDelivery(
        since=since,
        until=until,
        delivered=row.delivered,
        with_requested_date=row.with_promise,
        on_time=row.on_time,
        on_time_rate=rate,
    )


@reports_router.get("/receivables", response_model=Page[Receivable], responses=problem_responses(400, 401, 403))
async def receivables(
    request: Request,
    response: Response,
    principal: Finance,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    customer_id: Annotated[SafeStr | None, Query(min_length=1, max_length=100, description="This customer")] = None,
) -> Page[Receivable]:
    """Outstanding receivables by customer and currency, largest first: what approved orders still owe.

    The invoiced part is aged by each invoice's due date (an invoice without one is due when
    issued), in days past due in the business time zone: not yet due, 1-30, 31-60, 61-90, over 90.
    Payments settle the earliest-due invoices first. `not_invoiced` is owed but not invoiced yet."""
    rows, next_cursor = await handlers.receivables(uow, page, customer_id=customer_id)
    items = [
        Receivable(
            customer_id=r.customer_id,
            currency=r.currency,
            outstanding=r.outstanding,
            invoiced=r.invoiced_open,
            not_due=r.not_due,
            days_1_30=r.d1_30,
            days_31_60=r.d31_60,
            days_61_90=r.d61_90,
            days_over_90=r.d90_plus,
            not_invoiced=r.not_invoiced,
        )
        for r in rows
    ]
    return paginated(request, response, items, next_cursor)
