"""Sales reps and teams, and the assignment rules: region and industry pick the eligible reps,
the least loaded relative to capacity wins, round-robin among equals, inactive reps never get
leads, a manager assigns by hand. Fairness over 1,000 concurrent registrations."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

from services.leads.domain import RepStatus, SalesRep, choose_rep
from tests.conftest import System, auth
from tests.leads.org import ADMIN, events, owners, put_rep, put_team, register_many

MGR = auth("mgr-1", "sales_manager", team="t1")
MGR2 = auth("mgr-2", "sales_manager", team="t2")
FORM = auth("web-form", "integration")
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def rep(rep_id: str, capacity: int = 10, **fields) -> SalesRep:
    return SalesRep(id=rep_id, name=rep_id, created_at=NOW, capacity=capacity, **fields)


def test_least_loaded_relative_to_capacity_wins_then_round_robin() -> None:
    reps = [rep("a", 10), rep("b", 10), rep("c", 20)]
    # c has the same share used as a and b with twice the leads.
    assert choose_rep(reps, {"a": 5, "b": 5, "c": 9}, region=None, industry=None).id == "c"
    assert choose_rep(reps, {"a": 5, "b": 5, "c": 10}, region=None, industry=None).id == "a"
    assert choose_rep(reps, {"a": 5, "b": 5, "c": 10}, region=None, industry=None, cursor="a").id == "b"
    assert choose_rep(reps, {"a": 5, "b": 5, "c": 10}, region=None, industry=None, cursor="c").id == "a"
    assert choose_rep(reps, {"a": 5, "b": 5, "c": 10}, region=None, industry=None, exclude={"a"}).id == "b"
    assert choose_rep(reps, {"a": 10, "b": 10, "c": 20}, region=None, industry=None) is None  # all full


def test_region_industry_and_status_pick_the_eligible() -> None:
    reps = [
        rep("east-any", region="east"),
        rep("east-chem", region="east", industries=("chemicals",)),
        rep("west", region="west"),
        rep("anywhere"),
        rep("away", region="east", status=RepStatus.ON_LEAVE),
        rep("gone", region="east", status=RepStatus.INACTIVE),
        rep("zero", region="east", capacity=0),
    ]
    loads = {"east-any": 1, "anywhere": 1}  # east-chem is the least loaded

    def pick(region, industry, **kw):
        chosen = choose_rep(reps, loads, region=region, industry=industry, **kw)
        return chosen and chosen.id

    assert pick("east", "chemicals") == "east-chem"
    assert pick("east", "textiles") == "anywhere"  # east-chem only takes chemicals
    assert pick("west", None) == "west"
    assert pick("north", None) == "anywhere"
    assert pick("north", None, exclude={"anywhere"}) is None


def test_round_robin_among_equals_is_even_over_1000_leads() -> None:
    reps = [rep(f"r{i}", 1000) for i in range(7)]
    loads: dict[str, int] = {}
    cursor = None
    for _ in range(1000):
        chosen = choose_rep(reps, loads, region=None, industry=None, cursor=cursor)
        loads[chosen.id] = loads.get(chosen.id, 0) + 1
        cursor = chosen.id
    assert max(loads.values()) - min(loads.values()) <= 1 and sum(loads.values()) == 1000


async def test_fairness_over_1000_concurrent_leads(system: System, clean_db: asyncpg.Connection) -> None:
    """Four eligible reps (three of capacity 300, one of 150), one on leave, one inactive, one of
    another region; 1,000 leads registered 16 at a time, then 100 more than fit."""
    leads = await system.client("leads")
    await put_team(leads, "t-east", manager="mgr-1")
    for rep_id in ("a", "b", "c"):
        await put_rep(leads, rep_id, team_id="t-east", region="east", capacity=300)
    await put_rep(leads, "d", team_id="t-east", region="east", capacity=150)
    await put_rep(leads, "away", team_id="t-east", region="east", capacity=300, status="on_leave")
    await put_rep(leads, "gone", team_id="t-east", region="east", capacity=300, status="inactive")
    await put_rep(leads, "west", region="west", capacity=300)

    await register_many(1000, region="east")
    counts = await owners(clean_db)
    assert set(counts) == {"a", "b", "c", "d"}
    for rep_id, capacity in {"a": 300, "b": 300, "c": 300, "d": 150}.items():
        ideal = 1000 * capacity / 1050
        assert abs(counts[rep_id] - ideal) <= 1, (rep_id, counts[rep_id], ideal)
    assert max(counts[r] for r in "abc") - min(counts[r] for r in "abc") <= 1
    assigned = await events(clean_db, "lead.assigned.v1")
    assert len(assigned) == 1000 and {e["method"] for e in assigned} == {"rules"}
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 1000

    await register_many(100, region="east", prefix="more")
    counts = await owners(clean_db)
    assert counts == {"a": 300, "b": 300, "c": 300, "d": 150, None: 50}  # full reps: the rest wait in the pool
    pooled = [e for e in await events(clean_db, "lead.created.v1") if e["in_pool"]]
    assert len(pooled) == 50 and all(e["owner_id"] == "" for e in pooled)


async def test_a_new_lead_goes_to_the_eligible_rep_or_the_pool(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "chem", region="east", industries=["chemicals"])
    body = {"source": "online_ad", "company_name": "Acme Chemicals", "region": "east", "industry": "chemicals"}
    lead = (await leads.post("/v1/leads", json=body, headers=FORM)).json()
    assert (lead["owner_id"], lead["registered_by"], lead["pooled_at"]) == ("chem", "web-form", None)
    assert lead["assigned_at"] == lead["created_at"]
    [assigned] = await events(clean_db, "lead.assigned.v1")
    assert (assigned["owner_id"], assigned["method"], assigned["assigned_by"]) == ("chem", "rules", "web-form")
    assert assigned["first_contact_due_at"]

    other = {**body, "company_name": "Textile Co", "industry": "textiles"}
    pooled = (await leads.post("/v1/leads", json=other, headers=FORM)).json()
    assert (pooled["owner_id"], pooled["assigned_at"]) == (None, None) and pooled["pooled_at"]
    # A rep's own registration stays theirs (first-registered owner), whatever the rules say.
    mine = await leads.post("/v1/leads", json={**body, "company_name": "Mine"}, headers=auth("rep-9", "sales_rep"))
    assert mine.json()["owner_id"] == "rep-9"
    # The same customer again (by name): it goes to the pool lead's customer owner, i.e. nobody
    # registered it before a rep did, so the rep owns it now.
    again = (await leads.post("/v1/leads", json=other, headers=auth("rep-9", "sales_rep"))).json()
    assert (again["owner_id"], again["duplicate_of_lead_id"]) == ("rep-9", pooled["id"])
    assert len(await events(clean_db, "lead.assigned.v1")) == 1


async def test_reps_and_teams_are_managed_within_scope(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_team(leads, "t1", manager="mgr-1")
    await put_team(leads, "t2", manager="mgr-2")
    created = await leads.put("/v1/sales-reps/r1", json={"name": "R1", "team_id": "t1", "capacity": 5}, headers=MGR)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "active" and created.headers["ETag"]
    stale = {"If-Match": '"999"', **MGR}
    body = {"name": "R1", "team_id": "t1", "capacity": 5, "status": "on_leave"}
    assert (await leads.put("/v1/sales-reps/r1", json=body, headers=stale)).status_code == 412
    fresh = {"If-Match": created.headers["ETag"], **MGR}
    updated = await leads.put("/v1/sales-reps/r1", json=body, headers=fresh)
    assert updated.status_code == 200 and updated.json()["status"] == "on_leave"
    # mgr-2 neither sees r1 nor may put a rep into mgr-1's team.
    assert (await leads.get("/v1/sales-reps/r1", headers=MGR2)).status_code == 404
    assert (await leads.put("/v1/sales-reps/r1", json=body, headers=MGR2)).status_code == 404
    into_t1 = {"name": "X", "team_id": "t1", "capacity": 5}
    assert (await leads.put("/v1/sales-reps/x", json=into_t1, headers=MGR2)).status_code == 403
    assert (await leads.put("/v1/sales-reps/x", json={**into_t1, "team_id": "nope"}, headers=ADMIN)).status_code == 422
    assert (await leads.put("/v1/sales-teams/t3", json={"name": "T3"}, headers=MGR)).status_code == 403
    for bad in (
        {"name": "X", "capacity": -1},
        {"name": "", "capacity": 1},
        {"name": "X", "capacity": 1, "status": "?"},
    ):
        assert (await leads.put("/v1/sales-reps/y", json=bad, headers=ADMIN)).status_code == 422
    assert [r["id"] for r in (await leads.get("/v1/sales-reps", headers=MGR)).json()["items"]] == ["r1"]
    assert (await leads.get("/v1/sales-reps", headers=MGR2)).json()["items"] == []
    assert [t["id"] for t in (await leads.get("/v1/sales-teams", headers=MGR2)).json()["items"]] == ["t2"]
    assert (await leads.get("/v1/sales-reps/r1", headers=auth("r1", "sales_rep"))).status_code == 200
    assert (await leads.get("/v1/sales-teams/t1", headers=auth("r1", "sales_rep"))).status_code == 200
    assert (await leads.get("/v1/sales-teams/t2", headers=auth("r1", "sales_rep"))).status_code == 404
    assert await clean_db.fetchval("SELECT count(*) FROM leads.sales_reps") == 1


async def test_a_manager_assigns_by_hand_or_by_the_rules(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_team(leads, "t1", manager="mgr-1")
    await put_team(leads, "t2", manager="mgr-2")
    await put_rep(leads, "r1", team_id="t1", region="east")
    await put_rep(leads, "r2", team_id="t1", region="east")
    await put_rep(leads, "away", team_id="t1", region="east", status="on_leave")
    await put_rep(leads, "other", team_id="t2", region="west")
    body = {"source": "trade_show", "company_name": "Acme", "region": "east"}
    lead = (await leads.post("/v1/leads", json=body, headers=FORM)).json()
    first = lead["owner_id"]
    url = f"/v1/leads/{lead['id']}/assign"
    second = "r2" if first == "r1" else "r1"
    for target in ("away", "other", "nobody"):
        response = await leads.post(url, json={"owner_id": target}, headers=MGR)
        assert response.status_code == 422, (target, response.text)
    assert (await leads.post(url, json={"owner_id": second}, headers=MGR2)).status_code == 404  # not their team's
    by_hand = await leads.post(url, json={"owner_id": second}, headers=MGR)
    assert by_hand.status_code == 200 and by_hand.json()["owner_id"] == second
    by_rules = await leads.post(url, json={}, headers=MGR)  # someone other than the current owner
    assert by_rules.status_code == 200 and by_rules.json()["owner_id"] == first
    methods = [(e["method"], e["owner_id"], e["previous_owner_id"]) for e in await events(clean_db, "lead.assigned.v1")]
    assert methods == [("rules", first, None), ("manual", second, first), ("rules", first, second)]
    # The first-contact clock restarted with every assignment: one timer, due after the last.
    payload = await clean_db.fetchval("SELECT payload::text FROM leads.timers WHERE kind = 'lead.first_contact'")
    assert json.loads(payload)["owner_id"] == first


async def test_nobody_with_room_means_the_pool(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", capacity=0)
    lead = (await leads.post("/v1/leads", json={"source": "referral", "company_name": "Z"}, headers=FORM)).json()
    assert lead["owner_id"] is None
    assert (await leads.post(f"/v1/leads/{lead['id']}/assign", json={}, headers=ADMIN)).status_code == 422
