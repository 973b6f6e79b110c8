"""A sales organisation for the capture tests: teams and reps through the API, leads registered
through the real handlers (many, concurrently) and read back from the leads schema."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx

from services.leads import handlers
from services.leads.config import assignment_policy, load_grading_rules
from services.leads.db import platform_tables
from services.leads.domain import LeadSource
from shared.auth import Principal
from shared.db import create_engine
from shared.uow import UnitOfWork
from tests.conftest import auth, settings_for

ADMIN = auth("admin-1", "admin")
FORM = Principal(sub="web-form", roles=frozenset({"integration"}))


async def put_team(leads: httpx.AsyncClient, team_id: str, *, manager: str, region: str = "east") -> None:
    body = {"name": team_id, "region": region, "manager_id": manager}
    response = await leads.put(f"/v1/sales-teams/{team_id}", json=body, headers=ADMIN)
    assert response.status_code in (200, 201), response.text


async def put_rep(leads: httpx.AsyncClient, rep_id: str, **fields) -> dict:
    body = {"name": rep_id, "capacity": 100, **fields}
    response = await leads.put(f"/v1/sales-reps/{rep_id}", json=body, headers=ADMIN)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def register_many(count: int, *, concurrency: int = 16, prefix: str = "co", **fields) -> list:
    """``count`` distinct leads registered by a web form through the handlers, ``concurrency`` at once."""
    settings = settings_for("leads")
    engine = create_engine(settings)
    rules = load_grading_rules(settings.grading_rules_path)
    policy = assignment_policy(settings)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int):
        cmd = handlers.RegisterLead(source=LeadSource.WEB_FORM, company_name=f"{prefix} {i}", **fields)
        async with semaphore:
            uow = UnitOfWork(engine, platform_tables, settings.source)
            return await handlers.register_lead(
                cmd, FORM, uow, rules=rules, phone_region=settings.phone_region, policy=policy
            )

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await engine.dispose()


async def owners(db: asyncpg.Connection) -> dict[str | None, int]:
    rows = await db.fetch("SELECT owner_id, count(*) AS n FROM leads.leads GROUP BY owner_id")
    return {r["owner_id"]: r["n"] for r in rows}


async def events(db: asyncpg.Connection, event_type: str) -> list[dict]:
    rows = await db.fetch("SELECT envelope FROM leads.outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [json.loads(r["envelope"])["data"] for r in rows]
