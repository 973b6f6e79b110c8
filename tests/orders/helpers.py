"""Approving orders in tests: the three levels, through the API or the handlers."""

from __future__ import annotations

import uuid

import httpx

from services.orders import handlers
from services.orders.db import platform_tables
from shared.auth import Principal
from shared.db import create_engine
from shared.uow import UnitOfWork
from tests.conftest import auth, settings_for

MANAGER = auth("manager-1", "sales_manager")
DIRECTOR = auth("director-1", "regional_director", region="east")
FINANCE = auth("finance-1", "finance")

MANAGER_PRINCIPAL = Principal(sub="manager-1", roles=frozenset({"sales_manager"}))
FINANCE_PRINCIPAL = Principal(sub="finance-1", roles=frozenset({"finance"}))


async def approve_through_api(orders: httpx.AsyncClient, order_id: str) -> dict:
    """Sales manager, then finance (no discount beyond the owner's authority, credit within the limit)."""
    for headers in (MANAGER, FINANCE):
        response = await orders.post(f"/v1/orders/{order_id}/approve", headers=headers)
        assert response.status_code == 200, response.text
    order = response.json()
    assert order["status"] == "released", order
    return order


async def approve_with_handlers(order_id: uuid.UUID, levels: tuple[str, ...] = ("manager", "finance")) -> None:
    """The given levels approve in turn, each in its own transaction (on its own engine)."""
    principals = {"manager": MANAGER_PRINCIPAL, "finance": FINANCE_PRINCIPAL}
    settings = settings_for("orders")
    engine = create_engine(settings)
    try:
        for level in levels:
            uow = UnitOfWork(engine, platform_tables, settings.source)
            await handlers.approve_order(order_id, principals[level], uow)
    finally:
        await engine.dispose()
