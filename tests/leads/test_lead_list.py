"""The lead list per scope: one keyset query per scope alternative (own, team, region, registered),
merged into one page: every visible lead exactly once, oldest first, across pages and filters."""

from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import System, auth
from tests.leads.org import put_rep, put_team
from tests.leads.test_leads_api import create, lead_body

REP1 = auth("rep-1", "sales_rep")
REP3 = auth("rep-3", "sales_rep")
MANAGER = auth("mgr-1", "sales_manager", team="t-east")
DIRECTOR = auth("dir-1", "regional_director", region="north")


async def all_pages(leads: httpx.AsyncClient, headers: dict, **params) -> list[str]:
    """Every id of the list, page by page (two per page)."""
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        response = await leads.get("/v1/leads", params=query, headers=headers)
        assert response.status_code == 200, response.text
        seen += [lead["id"] for lead in response.json()["items"]]
        if (cursor := response.json()["next_cursor"]) is None:
            return seen


def body(name: str, **overrides) -> dict:
    return lead_body(phone=None, email=None, uscc=None, company_name=name, **overrides)


async def test_each_scope_lists_its_leads_once_in_order(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_team(leads, "t-east", manager="mgr-1")
    await put_team(leads, "t-west", manager="mgr-2")
    for rep, team in (("rep-1", "t-east"), ("rep-2", "t-east"), ("rep-3", "t-west")):
        await put_rep(leads, rep, team_id=team)
    rep2 = auth("rep-2", "sales_rep")
    made = [
        await create(leads, body("A1", region="north", budget="1000"), REP1),
        await create(leads, body("B1"), rep2),
        await create(leads, body("C1", region="north"), REP3),
        await create(leads, body("A2", campaign="autumn-expo"), REP1),
        await create(leads, body("B2", budget="1000"), rep2),
        await create(leads, body("C2"), REP3),
    ]
    # rep-3 registers a customer rep-1 registered first: rep-1 owns it, rep-3 sees it too.
    made.append(await create(leads, body("A1", region="north"), REP3))
    ids = [lead["id"] for lead in made]
    assert made[6]["owner_id"] == "rep-1" and made[6]["ownership_conflict"] is True

    assert await all_pages(leads, REP1) == [ids[0], ids[3], ids[6]]
    assert await all_pages(leads, REP3) == [ids[2], ids[5], ids[6]]
    assert await all_pages(leads, MANAGER) == [ids[0], ids[1], ids[3], ids[4], ids[6]]
    assert await all_pages(leads, DIRECTOR) == [ids[0], ids[2], ids[6]]
    assert await all_pages(leads, auth("admin-1", "admin")) == ids

    # Filters apply within every alternative: grade (budget 1000 grades C), campaign, region,
    # source, a created range.
    assert await all_pages(leads, MANAGER, grade="C") == [ids[0], ids[4]]
    assert await all_pages(leads, MANAGER, campaign="autumn-expo") == [ids[3]]
    assert await all_pages(leads, REP3, source="trade_show", region="north") == [ids[2], ids[6]]
    window = {"created_from": made[1]["created_at"], "created_before": made[4]["created_at"]}
    assert await all_pages(leads, MANAGER, **window) == [ids[1], ids[3]]
    assert await all_pages(leads, REP3, **window) == [ids[2]]

    naive = await leads.get("/v1/leads", params={"created_from": "2026-01-01T00:00:00"}, headers=MANAGER)
    assert naive.status_code == 422 and naive.headers["content-type"] == "application/problem+json"
