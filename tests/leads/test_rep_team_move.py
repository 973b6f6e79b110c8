"""A rep moved to another team (``PUT /v1/sales-reps/{id}``) takes their open work along, against
real PostgreSQL: the new manager sees the open lead, the accounts, the open opportunity and its
quote (by id and in the lists), the old manager gets 404s on them; the won opportunity, its quote
and the converted leads stay with the old team (and in its funnel); every moved row has a new
version; a put that keeps the team changes nothing; no event is written."""

from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import System, auth
from tests.leads.org import put_rep, put_team
from tests.leads.test_leads_api import lead_body
from tests.leads.test_quotes import quote_body

REP = auth("r1", "sales_rep", team="tA", region="east")
MANAGER_A = auth("mgr-a", "sales_manager", team="tA", region="east")
MANAGER_B = auth("mgr-b", "sales_manager", team="tB", region="east")
TABLES = ("leads", "accounts", "opportunities", "quotes")


def customer(n: int) -> dict:
    return lead_body(company_name=f"Customer {n}", phone=f"138 0013 800{n}", email=f"buyer{n}@c{n}.cn", uscc=None)


async def post(leads: httpx.AsyncClient, url: str, body: dict | None = None) -> dict:
    response = await leads.post(url, json=body, headers=REP)
    assert response.status_code in (200, 201), (url, response.text)
    return response.json()


async def opportunity_with_quote(leads: httpx.AsyncClient, n: int) -> tuple[dict, dict]:
    """Customer ``n``'s lead converted, its opportunity taken to negotiation and quoted."""
    lead = await post(leads, "/v1/leads", customer(n))
    converted = await post(leads, f"/v1/leads/{lead['id']}/convert", {})
    opportunity = converted["opportunity"]
    for stage in ("needs_analysis", "proposal", "negotiation"):
        await post(leads, f"/v1/opportunities/{opportunity['id']}/stage", {"stage": stage})
    quote = await post(leads, f"/v1/opportunities/{opportunity['id']}/quotes", quote_body())
    return converted, quote


async def stamps(db: asyncpg.Connection) -> dict[tuple[str, str], tuple[str | None, int]]:
    """(table, id) -> (team, version) of every lead, account, opportunity and quote."""
    found = {}
    for table in TABLES:
        for row in await db.fetch(f"SELECT id, team, version FROM leads.{table}"):
            found[(table, str(row["id"]))] = (row["team"], row["version"])
    return found


async def listed(leads: httpx.AsyncClient, path: str, headers: dict) -> set[str]:
    response = await leads.get(path, params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_a_reps_open_work_follows_them_to_their_new_team(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_team(leads, "tA", manager="mgr-a")
    await put_team(leads, "tB", manager="mgr-b")
    await put_rep(leads, "r1", team_id="tA", region="east")

    open_lead = await post(leads, "/v1/leads", customer(1))
    ongoing, open_quote = await opportunity_with_quote(leads, 2)
    finished, won_quote = await opportunity_with_quote(leads, 3)
    await post(leads, f"/v1/quotes/{won_quote['id']}/accept")
    won = await post(leads, f"/v1/opportunities/{finished['opportunity']['id']}/stage", {"stage": "won"})
    assert won["stage"] == "won"

    moving = {
        f"/v1/leads/{open_lead['id']}",
        f"/v1/accounts/{ongoing['account']['id']}",
        f"/v1/accounts/{finished['account']['id']}",  # accounts have no end: they follow the rep
        f"/v1/opportunities/{ongoing['opportunity']['id']}",
        f"/v1/quotes/{open_quote['id']}",
    }
    staying = {
        f"/v1/leads/{ongoing['lead_id']}",  # converted
        f"/v1/leads/{finished['lead_id']}",
        f"/v1/opportunities/{won['id']}",
        f"/v1/quotes/{won_quote['id']}",
    }
    etags = {}
    for url in moving | staying:
        response = await leads.get(url, headers=MANAGER_A)
        assert response.status_code == 200, (url, response.text)
        etags[url] = response.headers["etag"]
        assert (await leads.get(url, headers=MANAGER_B)).status_code == 404, url
    before = await stamps(clean_db)
    assert {team for team, _ in before.values()} == {"tA"}
    events_before = await clean_db.fetchval("SELECT count(*) FROM leads.outbox")

    await put_rep(leads, "r1", team_id="tB", region="east")

    for url in moving:
        assert (await leads.get(url, headers=MANAGER_A)).status_code == 404, url
        response = await leads.get(url, headers=MANAGER_B)
        assert response.status_code == 200, (url, response.text)
        assert response.headers["etag"] != etags[url], url
    for url in staying:
        response = await leads.get(url, headers=MANAGER_A)
        assert response.status_code == 200, (url, response.text)
        assert response.headers["etag"] == etags[url], url
        assert (await leads.get(url, headers=MANAGER_B)).status_code == 404, url
    for path in ("/v1/leads", "/v1/accounts", "/v1/opportunities", "/v1/quotes"):
        ids_b, ids_a = await listed(leads, path, MANAGER_B), await listed(leads, path, MANAGER_A)
        assert ids_b == {url.rsplit("/", 1)[1] for url in moving if url.startswith(path + "/")}, path
        assert ids_a == {url.rsplit("/", 1)[1] for url in staying if url.startswith(path + "/")}, path

    after = await stamps(clean_db)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {(url.split("/")[2], url.rsplit("/", 1)[1]) for url in moving}
    for key in changed:
        assert after[key] == ("tB", before[key][1] + 1), key
    # The rep's owner is the same: no event announces the move.
    assert await clean_db.fetchval("SELECT count(*) FROM leads.outbox") == events_before

    # The funnel by team stays historically right: the win is team A's, the open deal team B's.
    funnel_a = (await leads.get("/v1/sales-reports/funnel", headers=MANAGER_A)).json()
    funnel_b = (await leads.get("/v1/sales-reports/funnel", headers=MANAGER_B)).json()
    standing = {
        team: {s["stage"]: s["count"] for s in f["stages"] if s["count"]}
        for team, f in (("A", funnel_a), ("B", funnel_b))
    }
    assert standing == {"A": {"won": 1}, "B": {"negotiation": 1}}
    assert (funnel_a["won_value"], funnel_b["won_value"]) == (won["amount"], "0.00")

    # A put that keeps the team moves nothing and bumps nothing but the rep.
    await put_rep(leads, "r1", team_id="tB", region="west", capacity=20)
    assert await stamps(clean_db) == after
    assert await clean_db.fetchval("SELECT count(*) FROM leads.outbox") == events_before
