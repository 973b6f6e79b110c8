"""Building blocks the flow tests share: contracts signed through the real contracts handlers,
and counts read straight from the services' schemas."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from services.contracts import handlers as contract_handlers
from services.contracts.db import platform_tables as contract_tables
from services.contracts.domain import ContractLine
from shared.auth import Principal
from shared.db import create_engine
from shared.events import ContactInfo
from shared.uow import UnitOfWork
from tests.conftest import settings_for

REP = Principal(sub="rep-1", roles=frozenset({"sales_rep"}))


def contract_payload(customer: str = "cust-1", **overrides) -> dict:
    body = {
        "customer_id": customer,
        "customer_name": f"{customer} Ltd.",
        "contact": {"name": "Li Lei", "email": "li@example.com"},
        "owner_id": "rep-1",
        "region": "east",
        "currency": "CNY",
        "payment_terms": "net 30",
        "delivery_address": "1 Century Ave, Shanghai",
        "lines": [
            {"sku": "PUMP-1", "description": "Pump", "quantity": "2", "unit_price": "1500.00", "warranty_months": 12},
            {"sku": "SVC-1", "description": "Install", "quantity": "1", "unit_price": "300.00"},
        ],
    }
    body.update(overrides)
    return body


async def sign_contracts(
    count: int, *, customer_prefix: str = "cust", lines: list[ContractLine] | None = None
) -> list[uuid.UUID]:
    """Draft and sign ``count`` contracts through the contracts handlers (no HTTP).

    ``lines`` defaults to one pump without warranty."""
    settings = settings_for("contracts")
    engine = create_engine(settings)
    ids = []
    try:
        for i in range(count):
            cmd = contract_handlers.DraftContract(
                customer_id=f"{customer_prefix}-{i}",
                customer_name=f"Customer {i}",
                owner_id="rep-1",
                currency="CNY",
                payment_terms="net 30",
                contact=ContactInfo(name="Han Meimei"),
                lines=lines
                or [ContractLine(sku="P-1", description="Pump", quantity=Decimal(1), unit_price=Decimal(100))],
            )
            contract = await contract_handlers.draft_contract(cmd, UnitOfWork(engine, contract_tables, settings.source))
            await contract_handlers.sign_contract_shortcut(
                contract.id, REP, UnitOfWork(engine, contract_tables, settings.source)
            )
            ids.append(contract.id)
    finally:
        await engine.dispose()
    return ids


async def count(db: asyncpg.Connection, sql: str, *args) -> int:
    return int(await db.fetchval(sql, *args))
