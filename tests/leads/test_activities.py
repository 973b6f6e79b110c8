"""Activities on leads and accounts, and the durable deadlines around them: the follow-up
reminder, the 24 h first-contact rule (a short, configured deadline stands in for 24 h) including
the worker being down when it falls due, and the new account's 7-day contact deadline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.conftest import System, auth, clear_settings_caches, wait_until
from tests.leads.org import events, put_rep

FORM = auth("web-form", "integration")
R1, R2 = auth("r1", "sales_rep"), auth("r2", "sales_rep")
DEADLINE_SECONDS = 3.0


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch):
    """First contact within 3 s, a new account's within 3 s: the test does not wait a day."""
    monkeypatch.setenv("SALESLINE_LEADS_FIRST_CONTACT_HOURS", str(DEADLINE_SECONDS / 3600))
    monkeypatch.setenv("SALESLINE_LEADS_ACCOUNT_CONTACT_DAYS", str(DEADLINE_SECONDS / 86400))
    clear_settings_caches()
    yield
    clear_settings_caches()


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def assigned_lead(leads, name: str = "Acme", **fields) -> dict:
    body = {"source": "trade_show", "company_name": name, "region": "east", **fields}
    response = await leads.post("/v1/leads", json=body, headers=FORM)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_contact_is_the_first_contact_and_stops_the_clock(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east")
    lead = await assigned_lead(leads)
    assert lead["owner_id"] == "r1"
    url = f"/v1/leads/{lead['id']}/activities"
    now = datetime.now(UTC)
    bad_bodies = [
        {"kind": "fax", "occurred_at": iso(now)},
        {"kind": "call", "occurred_at": "2026-11-25T10:00:00"},  # no offset
        {"kind": "call", "occurred_at": iso(now + timedelta(hours=1))},  # not yet happened
        {"kind": "call", "occurred_at": iso(now), "next_follow_up_at": iso(now - timedelta(hours=1))},
        {"kind": "call", "occurred_at": iso(now), "notes": "a\x00b"},
        {"kind": "call", "occurred_at": iso(now), "extra": 1},
    ]
    for body in bad_bodies:
        response = await leads.post(url, json=body, headers=R1)
        assert response.status_code == 422, (body, response.text)
    assert (await leads.post(url, json={"kind": "call", "occurred_at": iso(now)}, headers=R2)).status_code == 404
    assert await clean_db.fetchval("SELECT count(*) FROM leads.activities") == 0

    note = await leads.post(url, json={"kind": "note", "occurred_at": iso(now), "notes": "looked them up"}, headers=R1)
    assert note.status_code == 201 and note.json()["first_contact"] is False
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 1
    call = {"kind": "call", "occurred_at": iso(now), "outcome": "interested", "notes": "wants a quote"}
    first = await leads.post(url, json=call, headers=R1)
    assert first.status_code == 201 and first.json()["first_contact"] is True, first.text
    second = await leads.post(url, json={**call, "kind": "visit"}, headers=R1)
    assert second.json()["first_contact"] is False
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 0
    read = (await leads.get(f"/v1/leads/{lead['id']}", headers=R1)).json()
    assert read["first_contacted_at"] is not None and read["version"] > lead["version"]
    logged = await events(clean_db, "activity.logged.v1")
    assert [(e["kind"], e["first_contact"], e["owner_id"]) for e in logged] == [
        ("note", False, "r1"),
        ("call", True, "r1"),
        ("visit", False, "r1"),
    ]
    page = await leads.get(url, params={"limit": 2}, headers=R1)
    assert [a["kind"] for a in page.json()["items"]] == ["note", "call"] and page.headers["Link"]
    assert (await leads.get(url, headers=R2)).status_code == 404


async def test_a_planned_follow_up_reminds_the_owner_once(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east")
    lead = await assigned_lead(leads)
    now = datetime.now(UTC)
    body = {"kind": "call", "occurred_at": iso(now), "next_follow_up_at": iso(now + timedelta(seconds=1))}
    activity = (await leads.post(f"/v1/leads/{lead['id']}/activities", json=body, headers=R1)).json()
    await system.start_worker("leads")
    [due] = await wait_until(lambda: events(clean_db, "activity.follow_up_due.v1"), what="the follow-up reminder")
    assert (due["activity_id"], due["lead_id"], due["owner_id"]) == (activity["id"], lead["id"], "r1")
    await wait_until(lambda: clean_db.fetchval("SELECT 1"), timeout=1)  # a few more polls
    assert len(await events(clean_db, "activity.follow_up_due.v1")) == 1


async def test_no_first_contact_in_time_returns_the_lead_once_even_with_the_worker_down(
    system: System, clean_db: asyncpg.Connection, short_deadlines: None
) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east")
    await put_rep(leads, "r2", region="east")
    lead = await assigned_lead(leads)
    assert lead["owner_id"] == "r1"  # the first of equals in id order
    await wait_until(
        lambda: clean_db.fetchval(
            "SELECT bool_and(due_at < now() - interval '0.3 seconds') FROM leads.timers"
            " WHERE kind = 'lead.first_contact'"
        ),
        what="the deadline to pass while no worker runs",
    )
    assert await events(clean_db, "lead.returned_to_pool.v1") == []

    await system.start_worker("leads")
    [returned] = await wait_until(lambda: events(clean_db, "lead.returned_to_pool.v1"), what="the late timer")
    await system.stop_worker("leads")  # before r2's own deadline falls due
    assert (returned["reason"], returned["previous_owner_id"], returned["returned_by"]) == (
        "no_first_contact",
        "r1",
        "system",
    )
    assigned = [(e["owner_id"], e["method"], e["assigned_by"]) for e in await events(clean_db, "lead.assigned.v1")]
    assert assigned == [("r1", "rules", "web-form"), ("r2", "rules", "system")]  # not to the same rep
    read = (await leads.get(f"/v1/leads/{lead['id']}", headers=R2)).json()
    assert (read["owner_id"], read["first_contacted_at"]) == ("r2", None)
    assert (await leads.get(f"/v1/leads/{lead['id']}", headers=R1)).status_code == 404

    # r2 calls in time: their clock stops; the worker comes back and nothing else happens.
    call = {"kind": "call", "occurred_at": iso(datetime.now(UTC))}
    assert (await leads.post(f"/v1/leads/{lead['id']}/activities", json=call, headers=R2)).json()["first_contact"]
    await system.start_worker("leads")
    past_r2_deadline = datetime.now(UTC) + timedelta(seconds=DEADLINE_SECONDS + 1)
    await wait_until(lambda: clean_db.fetchval("SELECT now() > $1::timestamptz", past_r2_deadline), timeout=10)
    assert len(await events(clean_db, "lead.returned_to_pool.v1")) == 1
    timers = await clean_db.fetch("SELECT fired_at, attempts FROM leads.timers WHERE kind = 'lead.first_contact'")
    # r1's fired once; r2's (one timer per assignment) was cancelled by the call.
    assert [(r["fired_at"] is not None, r["attempts"]) for r in timers] == [(True, 0)]


async def test_a_returned_lead_nobody_else_may_take_waits_in_the_pool(
    system: System, clean_db: asyncpg.Connection, short_deadlines: None
) -> None:
    leads = await system.client("leads")
    await put_rep(leads, "r1", region="east")
    await put_rep(leads, "r2", region="west")
    lead = await assigned_lead(leads)
    await system.start_worker("leads")
    await wait_until(lambda: events(clean_db, "lead.returned_to_pool.v1"), what="the deadline")
    read = (await leads.get(f"/v1/leads/{lead['id']}", headers=R1)).json()
    assert read["owner_id"] is None and read["pooled_at"]
    refused = await leads.post(f"/v1/leads/{lead['id']}/claim", headers=R1)
    assert refused.status_code == 409 and "first contact" in refused.json()["detail"]
    assert (await leads.post(f"/v1/leads/{lead['id']}/claim", headers=R2)).status_code == 200


async def test_a_new_account_without_contact_is_overdue_for_the_manager(
    system: System, clean_db: asyncpg.Connection, short_deadlines: None
) -> None:
    leads = await system.client("leads")
    admin = auth("admin-1", "admin")
    assert (await leads.put("/v1/sales-teams/t1", json={"name": "T1", "manager_id": "mgr-1"}, headers=admin)).is_success
    await put_rep(leads, "r1", team_id="t1", region="nowhere")
    rep = auth("r1", "sales_rep", team="t1")
    body = {
        "source": "referral",
        "company_name": "Quiet Co",
        "contact_name": "Li",
        "budget": "600000.00",
        "decision_timeframe": "within_1_month",
        "need_fit": "high",
    }
    quiet = (await leads.post("/v1/leads", json=body, headers=rep)).json()
    called = (await leads.post("/v1/leads", json={**body, "company_name": "Called Co"}, headers=rep)).json()
    accounts = []
    for lead in (quiet, called):
        converted = await leads.post(f"/v1/leads/{lead['id']}/convert", json={}, headers=rep)
        assert converted.status_code == 201, converted.text
        accounts.append(converted.json()["account"]["id"])
    call = {"kind": "call", "occurred_at": iso(datetime.now(UTC))}
    logged = await leads.post(f"/v1/accounts/{accounts[1]}/activities", json=call, headers=rep)
    assert logged.status_code == 201, logged.text
    assert (await leads.post(f"/v1/accounts/{accounts[1]}/activities", json=call, headers=R2)).status_code == 404
    await system.start_worker("leads")
    [overdue] = await wait_until(lambda: events(clean_db, "account.contact_overdue.v1"), what="the 7-day deadline")
    assert (overdue["account_id"], overdue["owner_id"], overdue["manager_id"]) == (accounts[0], "r1", "mgr-1")
    await wait_until(
        lambda: clean_db.fetchval(
            "SELECT count(*) = 0 FROM leads.timers WHERE kind = 'account.first_contact' AND fired_at IS NULL"
        )
    )
    await wait_until(lambda: clean_db.fetchval("SELECT 1"), timeout=1)
    assert len(await events(clean_db, "account.contact_overdue.v1")) == 1
    listed = (await leads.get(f"/v1/accounts/{accounts[1]}/activities", headers=rep)).json()["items"]
    assert [a["kind"] for a in listed] == ["call"]


async def test_a_planned_visit_is_approved_then_reported(system: System, clean_db: asyncpg.Connection) -> None:
    leads = await system.client("leads")
    await leads.put("/v1/sales-teams/t1", json={"name": "T1", "manager_id": "mgr-1"}, headers=auth("a", "admin"))
    await put_rep(leads, "r1", team_id="t1", region="east")
    lead = await assigned_lead(leads)
    manager, other = auth("mgr-1", "sales_manager", team="t1"), auth("mgr-2", "sales_manager", team="t2")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    url = f"/v1/leads/{lead['id']}/activities"
    call_plan = {"kind": "call", "occurred_at": iso(soon), "planned": True}
    assert (await leads.post(url, json=call_plan, headers=R1)).status_code == 422  # only visits are planned
    planned = await leads.post(url, json={**call_plan, "kind": "visit"}, headers=R1)
    assert planned.status_code == 201, planned.text
    visit = planned.json()
    assert (visit["status"], visit["first_contact"]) == ("planned", False)
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 1

    review, report = f"/v1/activities/{visit['id']}/review", f"/v1/activities/{visit['id']}/report"
    assert (await leads.post(report, json={"outcome": "met"}, headers=R1)).status_code == 409  # not approved
    assert (await leads.post(review, json={"approved": True}, headers=R1)).status_code == 403
    assert (await leads.post(review, json={"approved": True}, headers=other)).status_code == 404
    approved = await leads.post(review, json={"approved": True, "note": "take samples"}, headers=manager)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    assert (await leads.post(review, json={"approved": False}, headers=manager)).status_code == 409  # once
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert (await leads.post(report, json={"outcome": "met"}, headers=R2)).status_code == 404
    reported = await leads.post(report, json={"outcome": "met", "notes": "wants 20 pumps"}, headers=R1)
    assert reported.status_code == 200, reported.text
    assert (reported.json()["status"], reported.json()["first_contact"], reported.json()["outcome"]) == (
        "done",
        True,
        "met",
    )
    assert await clean_db.fetchval("SELECT count(*) FROM leads.timers WHERE kind = 'lead.first_contact'") == 0
    [reviewed] = await events(clean_db, "activity.visit_reviewed.v1")
    [done] = await events(clean_db, "activity.visit_reported.v1")
    assert (reviewed["approved"], reviewed["reviewed_by"], done["first_contact"]) == (True, "mgr-1", True)
