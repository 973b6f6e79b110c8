"""Tickets: numbers, the state machine, auto-assignment by capacity and duty, closed loop."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from services.service_desk.domain import Agent, Channel, Priority, Ticket, TicketStatus, TicketType, choose_agent
from shared.domain import InvalidTransition
from tests.conftest import System, auth, clear_settings_caches, wait_until
from tests.helpers import count
from tests.service_desk.events import envelope, order_delivered
from tests.test_pipeline import publish_raw

LEAD = auth("lead-1", "support_lead")
AGENT = auth("agent-1", "support_agent")
REP = auth("rep-1", "sales_rep")
NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_the_agent_with_the_most_relative_room_gets_it() -> None:
    agents = [
        Agent(id="a", name="A", groups=("repair",), capacity=2),
        Agent(id="b", name="B", groups=("repair",), capacity=4),
        Agent(id="c", name="C", groups=("repair",), capacity=10, on_duty=False),
        Agent(id="d", name="D", groups=("general",), capacity=10),
    ]
    assert choose_agent(agents, {}, "repair").id == "b"  # equal load 0: more spare room wins
    assert choose_agent(agents, {"b": 1}, "repair").id == "a"  # 0/2 < 1/4
    assert choose_agent(agents, {"a": 1, "b": 1}, "repair").id == "b"  # 1/4 < 1/2
    assert choose_agent(agents, {"a": 2, "b": 4}, "repair") is None  # full; c is off duty
    assert choose_agent(agents, {}, "complaints") is None


def new_ticket() -> Ticket:
    return Ticket.open(
        id=uuid.uuid4(),
        number="TK-2026-000001",
        created_at=NOW,
        subject="Pump leaks",
        description="",
        channel=Channel.PHONE,
        type=TicketType.REPAIR,
        priority=Priority.P2,
        group="repair",
        customer_id="acme",
        customer_name="Acme",
    )


def test_invalid_transitions_are_refused() -> None:
    ticket = new_ticket()
    for action in (ticket.start, ticket.wait_for_customer, ticket.customer_replied):
        with pytest.raises(InvalidTransition):
            action(NOW)
    with pytest.raises(InvalidTransition):
        ticket.resolve("fixed", now=NOW, by="a")
    with pytest.raises(InvalidTransition):
        ticket.reopen(now=NOW, reason="x")
    ticket.assign("a", now=NOW)
    ticket.start(NOW)
    assert ticket.first_responded_at == NOW
    ticket.resolve("replaced the seal", now=NOW, by="a")
    with pytest.raises(InvalidTransition):
        ticket.start(NOW)
    ticket.close(now=NOW, reason="agent")
    with pytest.raises(InvalidTransition):
        ticket.close(now=NOW, reason="agent")
    ticket.reopen(now=NOW, reason="leaks again")
    assert ticket.status == TicketStatus.REOPENED and ticket.reopen_count == 1 and ticket.closed_at is None


def ticket_body(**overrides) -> dict:
    body = {
        "subject": "泵漏水",
        "description": "The pump delivered last week leaks at the seal.",
        "channel": "phone",
        "type": "repair",
        "priority": "P2",
        "customer_id": "acme",
        "customer_name": "Acme Ltd.",
        "contact": {"name": "Li Lei", "email": "li@example.com"},
        "serial_number": "SN-1",
    }
    return body | overrides


async def put_agent(api: httpx.AsyncClient, agent_id: str, groups: list[str], capacity: int, on_duty: bool = True):
    response = await api.put(
        f"/v1/agents/{agent_id}",
        json={"name": agent_id.upper(), "groups": groups, "capacity": capacity, "on_duty": on_duty},
        headers=LEAD,
    )
    assert response.status_code in (200, 201), response.text
    return response


async def test_tickets_are_numbered_and_assigned_by_relative_load(system: System, clean_db: asyncpg.Connection) -> None:
    api = await system.client("service_desk")
    await put_agent(api, "a1", ["repair"], 2)
    await put_agent(api, "a2", ["repair", "general"], 4)
    await put_agent(api, "a3", ["repair"], 10, on_duty=False)
    denied = await api.put("/v1/agents/x", json={"name": "X", "groups": ["repair"], "capacity": 1}, headers=AGENT)
    assert denied.status_code == 403
    empty_group = await api.put("/v1/agents/x", json={"name": "X", "groups": [""], "capacity": 1}, headers=LEAD)
    assert empty_group.status_code == 422
    a3 = await api.get("/v1/agents/a3", headers=AGENT)
    assert a3.json()["on_duty"] is False and a3.headers["ETag"]
    assert (await api.get("/v1/agents/nobody", headers=AGENT)).status_code == 404

    assignees = []
    for _ in range(3):
        created = await api.post("/v1/tickets", json=ticket_body(), headers=AGENT)
        assert created.status_code == 201, created.text
        ticket = created.json()
        assert re.fullmatch(r"TK-20\d\d-\d{6}", ticket["number"]) and ticket["group"] == "repair"
        assert ticket["status"] == "assigned" and created.headers["Location"] == f"/v1/tickets/{ticket['id']}"
        assignees.append(ticket["assignee_id"])
    assert assignees == ["a2", "a1", "a2"]
    assert await count(clean_db, "SELECT count(*) FROM service_desk.outbox WHERE event_type = 'ticket.opened.v1'") == 3
    assigned = await clean_db.fetch("SELECT envelope FROM service_desk.outbox WHERE event_type = 'ticket.assigned.v1'")
    assert sorted(json.loads(r["envelope"])["data"]["assignee_id"] for r in assigned) == ["a1", "a2", "a2"]

    # A complaint: flagged; its group has one agent with room for one.
    await put_agent(api, "c1", ["complaints"], 1)
    first = (await api.post("/v1/tickets", json=ticket_body(type="complaint"), headers=AGENT)).json()
    queued = (await api.post("/v1/tickets", json=ticket_body(type="complaint"), headers=AGENT)).json()
    assert first["complaint"] and first["assignee_id"] == "c1"
    assert queued["status"] == "new" and queued["assignee_id"] is None
    await put_agent(api, "c1", ["complaints"], 2)  # more room: the queue moves
    assert (await api.get(f"/v1/tickets/{queued['id']}", headers=AGENT)).json()["assignee_id"] == "c1"

    listed = await api.get("/v1/tickets", params={"assignee_id": "a2", "status": "assigned"}, headers=AGENT)
    assert len(listed.json()["items"]) == 2
    assert (await api.get("/v1/tickets", headers=REP)).status_code == 403
    for bad in (ticket_body(priority="P9"), ticket_body(extra=1), ticket_body(subject=""), ticket_body(channel="fax")):
        refused = await api.post("/v1/tickets", json=bad, headers=AGENT)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert await count(clean_db, "SELECT count(*) FROM service_desk.tickets") == 5

    # A lead reassigns by hand.
    ticket_id = assigned_id = (await api.get("/v1/tickets", params={"assignee_id": "a1"}, headers=AGENT)).json()[
        "items"
    ][0]["id"]
    assert (
        await api.post(f"/v1/tickets/{ticket_id}/assign", json={"agent_id": "a3"}, headers=AGENT)
    ).status_code == 403
    moved = await api.post(f"/v1/tickets/{assigned_id}/assign", json={"agent_id": "a3"}, headers=LEAD)
    assert moved.json()["assignee_id"] == "a3"
    nobody = await api.post(f"/v1/tickets/{assigned_id}/assign", json={"agent_id": "ghost"}, headers=LEAD)
    assert nobody.status_code == 404


async def test_resolve_confirm_reopen_and_close(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await system.client("service_desk")
    await put_agent(api, "a1", ["repair"], 5)
    created = await api.post("/v1/tickets", json=ticket_body(), headers=AGENT)
    ticket = created.json()
    url = f"/v1/tickets/{ticket['id']}"
    wrong = await api.post(f"{url}/resolve", json={"resolution": "x"}, headers=AGENT)
    assert wrong.status_code == 409 and wrong.headers["content-type"].startswith("application/problem+json")
    started = await api.post(f"{url}/start", headers={**AGENT, "If-Match": created.headers["ETag"]})
    assert started.status_code == 200 and started.json()["first_responded_at"]
    stale = await api.post(f"{url}/wait-for-customer", headers={**AGENT, "If-Match": created.headers["ETag"]})
    assert stale.status_code == 412
    assert (await api.post(f"{url}/wait-for-customer", headers=AGENT)).json()["status"] == "waiting_on_customer"
    assert (await api.post(f"{url}/customer-replied", headers=AGENT)).json()["status"] == "in_progress"
    resolved = await api.post(f"{url}/resolve", json={"resolution": "Replaced the seal"}, headers=AGENT)
    assert resolved.json()["status"] == "resolved"

    [row] = await clean_db.fetch("SELECT envelope FROM service_desk.outbox WHERE event_type = 'ticket.resolved.v1'")
    link = json.loads(row["envelope"])["data"]["confirmation_link"]
    path = httpx.URL(link).path
    assert path.startswith("/v1/tickets/confirm/")
    survey = await clean_db.fetchrow("SELECT trigger, ticket_id FROM service_desk.surveys")
    assert survey["trigger"] == "ticket.resolved" and survey["ticket_id"] == uuid.UUID(ticket["id"])
    sent = await clean_db.fetchrow("SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.sent.v1'")
    assert json.loads(sent["envelope"])["data"]["link"].startswith("http")

    page = await api.get(path, headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Replaced the seal" in page.text and ticket["number"] in page.text
    reopened = await api.post(path, content="answer=not_resolved&note=still+leaking&lang=en", headers=FORM)
    assert reopened.status_code == 200 and "reopened" in reopened.text
    again = (await api.get(url, headers=AGENT)).json()
    assert again["status"] == "reopened" and again["reopen_count"] == 1 and again["assignee_id"] == "a1"
    assert (await api.get(path)).status_code == 404  # the link is used up

    await api.post(f"{url}/start", headers=AGENT)
    await api.post(f"{url}/resolve", json={"resolution": "Replaced the pump"}, headers=AGENT)
    rows = await clean_db.fetch(
        "SELECT envelope FROM service_desk.outbox WHERE event_type = 'ticket.resolved.v1' ORDER BY id"
    )
    path = httpx.URL(json.loads(rows[-1]["envelope"])["data"]["confirmation_link"]).path
    confirmed = await api.post(path, content="answer=resolved", headers=FORM)
    assert confirmed.status_code == 200 and "工单已关闭" in confirmed.text
    closed = (await api.get(url, headers=AGENT)).json()
    assert closed["status"] == "closed" and closed["close_reason"] == "confirmed"
    assert (await api.post(path, content="answer=not_resolved", headers=FORM)).status_code == 404
    assert await count(clean_db, "SELECT count(*) FROM service_desk.surveys") == 1  # surveyed once per ticket
    assert await count(clean_db, "SELECT count(*) FROM service_desk.timers WHERE kind = 'ticket.auto_close'") == 0
    types = [r["event_type"] for r in await clean_db.fetch("SELECT event_type FROM service_desk.outbox ORDER BY id")]
    assert [t for t in types if t.startswith("ticket.")] == [
        "ticket.opened.v1",
        "ticket.assigned.v1",
        "ticket.resolved.v1",
        "ticket.reopened.v1",
        "ticket.resolved.v1",
        "ticket.closed.v1",
    ]

    # No answer: the worker closes it after the configured time.
    monkeypatch.setenv("SALESLINE_SERVICE_DESK_TICKET_AUTO_CLOSE_AFTER_SECONDS", "0.3")
    clear_settings_caches()
    await system.start_worker("service_desk")
    other = (await api.post("/v1/tickets", json=ticket_body(), headers=AGENT)).json()
    await api.post(f"/v1/tickets/{other['id']}/start", headers=AGENT)
    await api.post(f"/v1/tickets/{other['id']}/resolve", json={"resolution": "Advice given"}, headers=AGENT)

    async def auto_closed():
        body = (await api.get(f"/v1/tickets/{other['id']}", headers=AGENT)).json()
        return body["status"] == "closed" and body["close_reason"] == "no_answer"

    await wait_until(auto_closed, what="the ticket closed for no answer")


async def test_repeat_issues_and_warranty_claims(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("service_desk")
    event = order_delivered(customer_id="acme")
    await publish_raw(envelope(event))
    await wait_until(lambda: clean_db.fetchval("SELECT count(*) = 3 FROM service_desk.warranties"), what="warranties")
    api = await system.client("service_desk")

    claim = await api.post("/v1/tickets", json=ticket_body(type="warranty_claim", serial_number="SN-1"), headers=AGENT)
    assert claim.status_code == 201, claim.text
    coverage = claim.json()["warranty_coverage"]
    assert coverage["covered"] is True and "SN-1" in coverage["detail"] and coverage["warranty_id"]
    assert claim.json()["repeat_of"] is None and claim.json()["category"] == "warranty_claim"

    again = (
        await api.post("/v1/tickets", json=ticket_body(type="warranty_claim", serial_number="SN-9"), headers=AGENT)
    ).json()
    assert again["warranty_coverage"]["reason"] == "not_registered"
    assert again["repeat_of"] == claim.json()["id"]  # same account and category within 30 days
    theirs = ticket_body(type="warranty_claim", serial_number="SN-1", customer_id="other")
    assert (await api.post("/v1/tickets", json=theirs, headers=AGENT)).json()["warranty_coverage"]["covered"] is False
    # An unserialised item by its order line: the hose (line 3) had one month, from 31 January.
    hose = ticket_body(type="warranty_claim", serial_number=None, order_id=str(event.order_id), order_line_no=3)
    hose_claim = await api.post("/v1/tickets", json=hose, headers=AGENT)
    assert hose_claim.status_code == 201, hose_claim.text
    assert hose_claim.json()["order_line_no"] == 3
    assert hose_claim.json()["warranty_coverage"]["reason"] == "expired"
    assert f"line 3 of order {event.order_id}" in hose_claim.json()["warranty_coverage"]["detail"]
    no_warranty = ticket_body(type="warranty_claim", serial_number=None, order_id=str(event.order_id), order_line_no=2)
    assert (await api.post("/v1/tickets", json=no_warranty, headers=AGENT)).json()["warranty_coverage"][
        "reason"
    ] == "not_registered"
    line_alone = await api.post("/v1/tickets", json=ticket_body(serial_number=None, order_line_no=3), headers=AGENT)
    assert line_alone.status_code == 422
    other_category = (await api.post("/v1/tickets", json=ticket_body(category="billing"), headers=AGENT)).json()
    assert other_category["repeat_of"] is None and other_category["warranty_coverage"] is None
    opened = await clean_db.fetch(
        "SELECT envelope FROM service_desk.outbox WHERE event_type = 'ticket.opened.v1' ORDER BY id"
    )
    repeats = [json.loads(r["envelope"])["data"]["repeat_issue"] for r in opened]
    assert repeats == [False, True, False, True, True, False]


async def test_capacity_holds_under_concurrent_opens(system: System, clean_db: asyncpg.Connection) -> None:
    """Agent rows are locked while choosing: parallel opens never push anyone past capacity."""
    api = await system.client("service_desk")
    await put_agent(api, "p1", ["repair"], 2)
    await put_agent(api, "p2", ["repair"], 3)
    responses = await asyncio.gather(*(api.post("/v1/tickets", json=ticket_body(), headers=AGENT) for _ in range(8)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    loads = dict(
        await clean_db.fetch(
            "SELECT coalesce(assignee_id, '-') AS who, count(*) FROM service_desk.tickets GROUP BY assignee_id"
        )
    )
    assert loads == {"p1": 2, "p2": 3, "-": 3}
    numbers = {r.json()["number"] for r in responses}
    assert len(numbers) == 8
