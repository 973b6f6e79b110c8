"""The response report over HTTP against real PostgreSQL, with a controllable clock: reps given
leads at known times and contacting them at known times give the exact medians, 90th
percentiles, shares within the deadline and pool returns (the automatic one by the real worker
and its durable timer); who sees which rep's figures; its filters; bad filters are 422s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.leads import handlers
from tests.conftest import System, auth, wait_until
from tests.leads.org import ADMIN, events, put_rep, put_team

FORM = auth("web-form", "integration")
MANAGER = auth("mgr-1", "sales_manager", team="t1", region="east")
OTHER_MANAGER = auth("mgr-2", "sales_manager", team="t2", region="east")
R1, R2 = auth("r1", "sales_rep", team="t1"), auth("r2", "sales_rep", team="t1")
URL = "/v1/sales-reports/response"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


class Clock:
    """Stands in for the leads handlers' clock: assignments, contacts and returns happen at ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(T0)
    monkeypatch.setattr(handlers, "_now", clock)
    return clock


async def given(leads: httpx.AsyncClient, clock: Clock, at: datetime, rep: str, manager: dict, name: str) -> str:
    """A lead of a region no rep covers (so it waits in the pool), assigned by hand to ``rep`` at ``at``."""
    body = {"source": "web_form", "company_name": name, "region": "north"}
    created = await leads.post("/v1/leads", json=body, headers=FORM)
    assert created.status_code == 201 and created.json()["owner_id"] is None, created.text
    clock.now = at
    lead_id = created.json()["id"]
    assigned = await leads.post(f"/v1/leads/{lead_id}/assign", json={"owner_id": rep}, headers=manager)
    assert assigned.status_code == 200, assigned.text
    return lead_id


async def contact(leads: httpx.AsyncClient, clock: Clock, lead_id: str, at: datetime, headers: dict) -> None:
    clock.now = at
    body = {"kind": "call", "occurred_at": at.isoformat()}
    logged = await leads.post(f"/v1/leads/{lead_id}/activities", json=body, headers=headers)
    assert logged.status_code == 201 and logged.json()["first_contact"], logged.text


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


async def test_response_report(system: System, clean_db: asyncpg.Connection, clock: Clock) -> None:
    leads = await system.client("leads")
    await put_team(leads, "t1", manager="mgr-1")
    await put_team(leads, "t2", manager="mgr-2")
    for rep, team in (("r1", "t1"), ("r2", "t1"), ("r3", "t2")):
        await put_rep(leads, rep, team_id=team, region="east")

    # r1 contacts four leads after 1, 2, 3 and 10 hours, all within 24 h; one more in October.
    for i, delay in enumerate((1, 2, 3, 10)):
        lead = await given(leads, clock, T0 + hours(i), "r1", MANAGER, f"R1 {i}")
        await contact(leads, clock, lead, T0 + hours(i + delay), R1)
    october = await given(leads, clock, datetime(2026, 10, 15, 9, tzinfo=UTC), "r1", MANAGER, "R1 October")
    await contact(leads, clock, october, datetime(2026, 10, 15, 10, tzinfo=UTC), R1)

    # r2: one contacted late (after 30 h), one released, one taken back by the 24 h rule.
    late = await given(leads, clock, T0, "r2", MANAGER, "R2 late")
    await contact(leads, clock, late, T0 + hours(30), R2)
    released = await given(leads, clock, T0, "r2", MANAGER, "R2 released")
    clock.now = T0 + hours(2)
    response = await leads.post(f"/v1/leads/{released}/release", json={"reason": "wrong number"}, headers=R2)
    assert response.status_code == 200, response.text
    await given(leads, clock, T0 + hours(1), "r2", MANAGER, "R2 silent")
    clock.now = T0 + hours(25)
    await system.start_worker("leads")  # its deadline (by the clock) has passed: the timer fires

    async def taken_back() -> list[dict]:
        returns = await events(clean_db, "lead.returned_to_pool.v1")
        return [e for e in returns if e["reason"] == "no_first_contact"]

    [returned] = await wait_until(taken_back, what="the 24 h return")
    await system.stop_worker("leads")
    assert (returned["previous_owner_id"], returned["returned_at"]) == ("r2", "2026-11-03T10:00:00Z")
    # And one that r2 still has, not contacted yet (its clock runs: no worker now).
    clock.now = T0 + hours(26)
    await given(leads, clock, T0 + hours(26), "r2", MANAGER, "R2 waiting")

    # r3, of the other team, contacts theirs after 5 hours.
    r3_lead = await given(leads, clock, T0, "r3", OTHER_MANAGER, "R3")
    await contact(leads, clock, r3_lead, T0 + hours(5), auth("r3", "sales_rep", team="t2"))

    async def report(headers: dict, **params: str) -> dict:
        response = await leads.get(URL, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    r1 = {
        "rep_id": "r1",
        "assigned": 4,
        "contacted": 4,
        "median_hours": "2.50",
        "p90_hours": "7.90",  # 3 + 0.9 of the way from 3 to 10 past the third
        "within_window": 4,
        "within_window_pct": "100.00",
        "uncontacted": 0,
        "returned_no_contact": 0,
        "released": 0,
    }
    r2 = {
        "rep_id": "r2",
        "assigned": 4,
        "contacted": 1,
        "median_hours": "30.00",
        "p90_hours": "30.00",
        "within_window": 0,
        "within_window_pct": "0.00",
        "uncontacted": 1,
        "returned_no_contact": 1,
        "released": 1,
    }
    r3 = {
        "rep_id": "r3",
        "assigned": 1,
        "contacted": 1,
        "median_hours": "5.00",
        "p90_hours": "5.00",
        "within_window": 1,
        "within_window_pct": "100.00",
        "uncontacted": 0,
        "returned_no_contact": 0,
        "released": 0,
    }

    def total(rows: list[dict], **figures) -> dict:
        summed = {k: sum(r[k] for r in rows) for k in ("assigned", "contacted", "within_window", "uncontacted")}
        counts = {k: sum(r[k] for r in rows) for k in ("returned_no_contact", "released")}
        return {**summed, **counts, **figures}

    everyone = await report(ADMIN, period="2026-11")
    assert everyone["period"] == "2026-11"
    assert everyone["reps"] == [r1, r2, r3]
    # All six first contacts: 1, 2, 3, 5, 10 and 30 hours after their assignment.
    assert everyone["total"] == total([r1, r2, r3], median_hours="4.00", p90_hours="20.00", within_window_pct="55.56")
    team = await report(MANAGER, period="2026-11")
    assert team["reps"] == [r1, r2]  # not r3, of another team
    assert team["total"] == total([r1, r2], median_hours="3.00", p90_hours="22.00", within_window_pct="50.00")
    assert (await report(OTHER_MANAGER, period="2026-11"))["reps"] == [r3]
    assert (await report(R1, period="2026-11"))["reps"] == [r1]
    # A rep asking for another rep's figures gets none (as in the funnel).
    other = await report(R1, owner_id="r2")
    assert other["reps"] == [] and other["total"]["assigned"] == 0 and other["total"]["median_hours"] is None
    assert other["total"]["within_window_pct"] is None
    assert (await report(auth("dir-1", "regional_director", region="north")))["total"]["assigned"] == 10
    assert (await report(auth("dir-2", "regional_director", region="east")))["reps"] == []

    # Filters: no period (October's too), rep, team, region, source, another period.
    [r1_ever] = (await report(ADMIN, owner_id="r1"))["reps"]
    assert (r1_ever["assigned"], r1_ever["median_hours"]) == (5, "2.00")
    assert (await report(ADMIN, team="t2", period="2026-11"))["reps"] == [r3]
    assert (await report(ADMIN, region="north", period="2026-11"))["total"]["assigned"] == 9
    assert (await report(ADMIN, region="east"))["total"]["assigned"] == 0
    assert (await report(ADMIN, source="web_form", period="2026-Q4"))["total"]["assigned"] == 10
    assert (await report(ADMIN, source="referral"))["total"]["assigned"] == 0
    assert [r["assigned"] for r in (await report(ADMIN, period="2026-10"))["reps"]] == [1]

    for bad in ({"period": "2026-13"}, {"period": "soon"}, {"source": "x"}, {"owner_id": "r" * 256}):
        response = await leads.get(URL, params=bad, headers=MANAGER)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await leads.get(URL, headers=auth("x", "support_agent"))).status_code == 403
    assert (await leads.get(URL)).status_code == 401


async def test_the_history_follows_reassignment_merge_and_override(
    system: System, clean_db: asyncpg.Connection, clock: Clock
) -> None:
    """A lead given to a second rep counts for both; a merge or an owner override ends the
    assignment (no longer uncontacted); one open assignment per lead at most."""
    leads = await system.client("leads")
    await put_team(leads, "t1", manager="mgr-1")
    for rep in ("r1", "r2"):
        await put_rep(leads, rep, team_id="t1", region="east")
    moved = await given(leads, clock, T0, "r1", MANAGER, "Moved")
    clock.now = T0 + hours(1)
    response = await leads.post(f"/v1/leads/{moved}/assign", json={"owner_id": "r2"}, headers=MANAGER)
    assert response.status_code == 200, response.text
    await contact(leads, clock, moved, T0 + hours(3), R2)
    survivor = await given(leads, clock, T0, "r1", MANAGER, "Survivor")
    duplicate = await given(leads, clock, T0, "r1", MANAGER, "Duplicate")
    merged = await leads.post(f"/v1/leads/{survivor}/merge", json={"duplicate_id": duplicate}, headers=MANAGER)
    assert merged.status_code == 200, merged.text
    overridden = await given(leads, clock, T0, "r1", MANAGER, "Overridden")
    body = {"owner_id": "r2", "reason": "r2 knows them"}
    response = await leads.post(f"/v1/leads/{overridden}/owner", json=body, headers=MANAGER)
    assert response.status_code == 200, response.text

    rows = await clean_db.fetch(
        "SELECT lead_id::text, rep_id, end_reason, first_contacted_at FROM leads.lead_assignments"
        " ORDER BY assigned_at, rep_id, end_reason NULLS FIRST"
    )
    assert sorted((r["lead_id"], r["rep_id"], r["end_reason"]) for r in rows) == sorted(
        [
            (moved, "r1", "reassigned"),
            (moved, "r2", None),
            (survivor, "r1", None),
            (duplicate, "r1", "merged"),
            (overridden, "r1", "owner_changed"),
        ]
    )
    [r1, r2] = (await leads.get(URL, headers=MANAGER)).json()["reps"]
    assert (r1["rep_id"], r1["assigned"], r1["contacted"], r1["uncontacted"]) == ("r1", 4, 0, 1)
    assert (r2["rep_id"], r2["assigned"], r2["contacted"], r2["median_hours"]) == ("r2", 1, 1, "2.00")
