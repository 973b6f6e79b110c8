"""The public pool: unassigned leads listed (cursor-paginated), claimed by reps (a daily limit,
capacity, exactly one winner among concurrent claims) and released back with a reason."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import System, auth, clear_settings_caches
from tests.leads.org import events, put_rep

FORM = auth("web-form", "integration")
R1, R2 = auth("r1", "sales_rep"), auth("r2", "sales_rep")


@pytest.fixture
def two_claims_a_day(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SALESLINE_LEADS_POOL_CLAIMS_PER_DAY", "2")
    clear_settings_caches()
    yield
    clear_settings_caches()


async def pool_lead(leads, name: str, region: str = "east") -> dict:
    """A lead of a region no rep covers: it waits in the pool."""
    body = {"source": "web_form", "company_name": name, "region": region}
    response = await leads.post("/v1/leads", json=body, headers=FORM)
    assert response.status_code == 201 and response.json()["owner_id"] is None, response.text
    return response.json()


async def test_the_pool_is_listed_longest_waiting_first(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    made = [await pool_lead(leads, f"Co {i}", region="east" if i % 2 else "west") for i in range(5)]
    pages, url = [], "/v1/lead-pool?limit=2"
    while url:
        response = await leads.get(url, headers=R1)
        assert response.status_code == 200, response.text
        pages.append([lead["id"] for lead in response.json()["items"]])
        url = response.json()["next_cursor"] and response.links["next"]["url"]
    assert pages == [[m["id"] for m in made[:2]], [m["id"] for m in made[2:4]], [made[4]["id"]]]
    east = (await leads.get("/v1/lead-pool", params={"region": "east"}, headers=R1)).json()["items"]
    assert [lead["id"] for lead in east] == [made[1]["id"], made[3]["id"]]
    assert (await leads.get("/v1/lead-pool", params={"cursor": "forged"}, headers=R1)).status_code == 400
    assert (await leads.get("/v1/lead-pool", headers=auth("f", "finance"))).status_code == 403
    # Pool leads are readable by any rep; they are not in anyone's own list.
    assert (await leads.get(f"/v1/leads/{made[0]['id']}", headers=R1)).status_code == 200
    assert (await leads.get("/v1/leads", headers=R1)).json()["items"] == []


async def test_claim_limits_and_release(system: System, clean_db: asyncpg.Connection, two_claims_a_day: None) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", capacity=100, region="nowhere")  # no rule gives r1 the new leads
    await put_rep(leads, "away", capacity=100, region="nowhere", status="on_leave")
    a, b, c = [await pool_lead(leads, name) for name in ("A", "B", "C")]

    assert (await leads.post(f"/v1/leads/{a['id']}/claim", headers=auth("stranger", "sales_rep"))).status_code == 403
    assert (await leads.post(f"/v1/leads/{a['id']}/claim", headers=auth("away", "sales_rep"))).status_code == 403
    assert (await leads.post(f"/v1/leads/{a['id']}/claim", headers=auth("m", "sales_manager"))).status_code == 403
    claimed = await leads.post(f"/v1/leads/{a['id']}/claim", headers=R1)
    assert claimed.status_code == 200, claimed.text
    lead = claimed.json()
    assert (lead["owner_id"], lead["pooled_at"]) == ("r1", None) and lead["assigned_at"]
    again = await leads.post(f"/v1/leads/{a['id']}/claim", headers=R1)
    assert again.status_code == 409  # theirs already: not in the pool
    assert (await leads.post(f"/v1/leads/{b['id']}/claim", headers=R1)).status_code == 200
    limit = await leads.post(f"/v1/leads/{c['id']}/claim", headers=R1)
    assert limit.status_code == 409 and "daily limit" in limit.json()["detail"]
    assigned = await events(clean_db, "lead.assigned.v1")
    assert [(e["method"], e["owner_id"], e["assigned_by"]) for e in assigned] == [("claim", "r1", "r1")] * 2
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 2

    url = f"/v1/leads/{a['id']}/release"
    assert (await leads.post(url, json={"reason": ""}, headers=R1)).status_code == 422
    assert (await leads.post(url, json={"reason": "wrong number"}, headers=R2)).status_code == 404
    stale = {"If-Match": '"1"', **R1}
    assert (await leads.post(url, json={"reason": "wrong number"}, headers=stale)).status_code == 412
    released = await leads.post(url, json={"reason": "wrong number"}, headers=R1)
    assert released.status_code == 200 and released.json()["owner_id"] is None and released.json()["pooled_at"]
    [returned] = await events(clean_db, "lead.returned_to_pool.v1")
    assert (returned["reason"], returned["note"], returned["previous_owner_id"]) == ("released", "wrong number", "r1")
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 1
    assert (await leads.post(url, json={"reason": "again"}, headers=R1)).status_code == 409  # in the pool already
    # Released leads still count against today's claims.
    assert (await leads.post(f"/v1/leads/{a['id']}/claim", headers=R1)).status_code == 409


async def test_capacity_bounds_claims(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", capacity=1, region="nowhere")
    a, b = await pool_lead(leads, "A"), await pool_lead(leads, "B")
    assert (await leads.post(f"/v1/leads/{a['id']}/claim", headers=R1)).status_code == 200
    full = await leads.post(f"/v1/leads/{b['id']}/claim", headers=R1)
    assert full.status_code == 409 and "capacity" in full.json()["detail"]


async def test_concurrent_claims_of_one_lead_have_one_winner(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    reps = [f"r{i}" for i in range(8)]
    for rep in reps:
        await put_rep(leads, rep, region="nowhere")
    lead = await pool_lead(leads, "Contested")
    responses = await asyncio.gather(
        *(leads.post(f"/v1/leads/{lead['id']}/claim", headers=auth(rep, "sales_rep")) for rep in reps)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [404] * 7, [r.text for r in responses]
    winner = next(r.json()["owner_id"] for r in responses if r.status_code == 200)
    assert await clean_db.fetchval("SELECT owner_id FROM leads.leads") == winner
    assert await clean_db.fetchval("SELECT count(*) FROM leads.lead_claims") == 1
    assert len(await events(clean_db, "lead.assigned.v1")) == 1
