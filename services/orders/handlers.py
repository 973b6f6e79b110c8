"""Order commands. Each opens the unit of work and ends with an explicit commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.orders.db import OrderRepository
from services.orders.domain import Order
from shared.auth import Principal
from shared.pagination import PageParams
from shared.uow import UnitOfWork


async def get_order(order_id: uuid.UUID, principal: Principal, uow: UnitOfWork) -> Order:
    async with uow:
        return await OrderRepository(uow).get_visible(order_id, principal)


async def deliver_order_shortcut(
    order_id: uuid.UUID,
    principal: Principal,
    uow: UnitOfWork,
    *,
    serial_numbers: dict[int, tuple[str, ...]] | None = None,
    if_match: int | None = None,
) -> Order:
    """SHORTCUT (platform issue): everything delivered at once; emits ``order.delivered``."""
    async with uow:
        orders = OrderRepository(uow)
        order = await orders.get_for_change(order_id, principal, if_match=if_match)
        order.deliver_shortcut(datetime.now(UTC), serial_numbers)
        await orders.save(order)
        await uow.commit()
    return order


async def list_orders(
    principal: Principal, uow: UnitOfWork, page: PageParams, *, contract_id: uuid.UUID | None = None
) -> tuple[list[Order], str | None]:
    async with uow:
        return await OrderRepository(uow).list(principal, page, filters={"contract_id": contract_id})
