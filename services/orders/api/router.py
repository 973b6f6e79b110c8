"""HTTP routes of the orders service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from services.orders import handlers
from services.orders.api.schemas import DeliverOrder, OrderRead
from shared.auth import ADMIN, FINANCE, REGIONAL_DIRECTOR, SALES_MANAGER, SALES_REP, Principal, require_roles
from shared.concurrency import set_etag
from shared.errors import problem_responses
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, page_params, paginated
from shared.service import expected_version, get_uow
from shared.uow import UnitOfWork

router = APIRouter(prefix="/v1/orders", tags=["orders"], route_class=IdempotentRoute)

Reader = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER, REGIONAL_DIRECTOR, FINANCE, ADMIN))]
Deliverer = Annotated[Principal, Depends(require_roles(SALES_MANAGER, ADMIN))]
Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.get("", response_model=Page[OrderRead], responses=problem_responses(400, 401, 403))
async def list_orders(
    request: Request,
    response: Response,
    principal: Reader,
    uow: Uow,
    page: Annotated[PageParams, Depends(page_params)],
    contract_id: Annotated[uuid.UUID | None, Query(description="The order entered from this contract")] = None,
) -> Page[OrderRead]:
    items, next_cursor = await handlers.list_orders(principal, uow, page, contract_id=contract_id)
    return paginated(request, response, [_read(o) for o in items], next_cursor)


@router.get("/{order_id}", response_model=OrderRead, responses=problem_responses(401, 403, 404))
async def get_order(order_id: uuid.UUID, response: Response, principal: Reader, uow: Uow) -> OrderRead:
    order = await handlers.get_order(order_id, principal, uow)
    set_etag(response, order.version)
    return _read(order)


@router.post(
    "/{order_id}/deliver", response_model=OrderRead, responses=problem_responses(400, 401, 403, 404, 409, 412, 422)
)
async def deliver_order(
    order_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: Deliverer,
    uow: Uow,
    body: Annotated[DeliverOrder | None, Body()] = None,
) -> OrderRead:
    """SHORTCUT (platform issue): everything on the order is delivered; emits `order.delivered`.

    The orders issue replaces this with shipments, ERP callbacks and partial deliveries.
    """
    serials = {line.line_no: tuple(line.serial_numbers) for line in (body.lines if body else [])}
    order = await handlers.deliver_order_shortcut(
        order_id, principal, uow, serial_numbers=serials, if_match=expected_version(request)
    )
    set_etag(response, order.version)
    return _read(order)


def _read(order) -> OrderRead:
    return OrderRead.model_validate(
        {
            **order.__dict__,
            "status": order.status.value,
            "lines": [line.__dict__ for line in order.lines],
            "contact": order.contact.model_dump() if order.contact else None,
        }
    )
