"""SLA: business time across weekends, public holidays (the National Day week, with its make-up
Saturday) and company days off; clocks that pause and resume; breaches that fire once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from services.service_desk.domain import Channel, Priority, Ticket, TicketType
from services.service_desk.domain.calendar import BusinessCalendar
from services.service_desk.domain.customer import customer_tier
from services.service_desk.domain.sla import FIRST_RESPONSE, RESOLUTION, SlaClock
from tests.conftest import System, auth, clear_settings_caches, settings_for, wait_until
from tests.helpers import count

SH = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar()  # 09:00-18:00 Asia/Shanghai, Monday-Friday, CN public holidays
AGENT = auth("agent-1", "support_agent")
LEAD = auth("lead-1", "support_lead")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "duration", "deadline"),
    [
        (at(2026, 11, 18, 10), 2 * H, at(2026, 11, 18, 12)),  # within a Wednesday
        (at(2026, 11, 20, 17), 2 * H, at(2026, 11, 23, 10)),  # Friday evening: over the weekend
        (at(2026, 11, 23, 7), 1 * H, at(2026, 11, 23, 10)),  # before opening
        (at(2026, 11, 23, 18, 30), 1 * H, at(2026, 11, 24, 10)),  # after closing
        (at(2026, 11, 18, 10), 24 * H, at(2026, 11, 20, 16)),  # P3: 8 h + 9 h + 7 h
        # National Day week 2026: 1-7 October off (incl. the weekend), 8 October back at work.
        (at(2026, 9, 30, 17), 4 * H, at(2026, 10, 8, 12)),
        # ...and Saturday 10 October is a make-up working day.
        (at(2026, 10, 9, 17), 2 * H, at(2026, 10, 10, 10)),
        # Spring Festival 2026: 15-23 February off (Saturday 14 and 28 February worked).
        (at(2026, 2, 13, 17), 2 * H, at(2026, 2, 14, 10)),
        (at(2026, 2, 14, 17), 2 * H, at(2026, 2, 24, 10)),
        (datetime(2026, 11, 20, 9, tzinfo=UTC), 2 * H, at(2026, 11, 23, 10)),  # 17:00 in Shanghai
    ],
)
def test_deadlines_in_business_time(start: datetime, duration: timedelta, deadline: datetime) -> None:
    assert CAL.add(start, duration) == deadline
    assert CAL.add(start, duration).tzinfo == UTC
    assert CAL.between(start, deadline) == duration


def test_public_holidays_and_company_days_off() -> None:
    assert not CAL.is_working_day(date(2026, 10, 1)) and not CAL.is_working_day(date(2026, 10, 7))
    assert CAL.is_working_day(date(2026, 10, 10))  # a Saturday, worked for the holiday week
    assert not CAL.is_working_day(date(2026, 11, 21))  # an ordinary Saturday
    company = BusinessCalendar(days_off=frozenset({date(2026, 11, 23)}))
    assert company.add(at(2026, 11, 20, 17), 2 * H) == at(2026, 11, 24, 10)
    assert CAL.between(at(2026, 11, 20, 12), at(2026, 11, 20, 11)) == timedelta(0)
    around_the_clock = BusinessCalendar(opens=time(0), closes=None, weekdays=frozenset(range(7)), country=None)
    assert around_the_clock.add(at(2026, 10, 1, 23), 2 * H) == at(2026, 10, 2, 1)


LUNCH = BusinessCalendar(breaks=((time(12), time(13, 30)),))  # 7.5 business hours a day


@pytest.mark.parametrize(
    ("start", "duration", "deadline"),
    [
        (at(2026, 11, 18, 11), 2 * H, at(2026, 11, 18, 14, 30)),  # over lunch
        (at(2026, 11, 18, 12, 15), 1 * H, at(2026, 11, 18, 14, 30)),  # opened during lunch
        (at(2026, 11, 18, 11), 1 * H, at(2026, 11, 18, 12)),  # used up as lunch begins
        # Friday 16:00 + 4 h: 2 h on Friday, then Monday 09:00-11:00.
        (at(2026, 11, 20, 16), 4 * H, at(2026, 11, 23, 11)),
        # Monday 11:30 + 8 h: 30 min + 4.5 h on Monday, Tuesday 09:00-12:00.
        (at(2026, 11, 23, 11, 30), 8 * H, at(2026, 11, 24, 12)),
        # The day before National Day, after lunch, into 8 October (1-7 October off), across its lunch.
        (at(2026, 9, 30, 17), 4 * H, at(2026, 10, 8, 12)),
        (at(2026, 9, 30, 17), 4 * H + timedelta(minutes=1), at(2026, 10, 8, 13, 31)),
    ],
)
def test_a_lunch_break_is_not_business_time(start: datetime, duration: timedelta, deadline: datetime) -> None:
    assert LUNCH.add(start, duration) == deadline
    assert LUNCH.between(start, deadline) == duration
    assert LUNCH.between(at(2026, 11, 18, 9), at(2026, 11, 18, 18)) == timedelta(hours=7, minutes=30)
    assert LUNCH.between(at(2026, 11, 18, 12, 10), at(2026, 11, 18, 13, 20)) == timedelta(0)


def test_the_settings_build_the_calendar_and_the_tier_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLINE_BUSINESS_BREAKS", '[["12:00", "13:30"]]')
    monkeypatch.setenv("SALESLINE_SLA_TIER_FIRST_RESPONSE_HOURS", '{"key": {"P1": 0.5}}')
    clear_settings_caches()
    try:
        settings = settings_for("service_desk")
        assert settings.calendar().breaks == ((time(12), time(13, 30)),)
        assert settings.calendar().add(at(2026, 11, 18, 11), 2 * H) == at(2026, 11, 18, 14, 30)
        assert settings.sla_targets("P1", "key") == {"first_response": 1800, "resolution": 4 * 3600}
        # The tier names no first response for P2 here: the priority's 4 h applies.
        assert settings.sla_targets("P2", "key") == {"first_response": 4 * 3600, "resolution": 12 * 3600}
        assert settings.sla_targets("P1", "unknown-tier") == settings.sla_targets("P1")
    finally:
        clear_settings_caches()
    with pytest.raises(ValueError, match="end after"):
        BusinessCalendar(breaks=((time(13), time(12)),))


def test_a_customer_tier_from_its_signed_totals() -> None:
    minimums = {"key": Decimal("1000000"), "strategic": Decimal("5000000")}
    assert customer_tier({}, minimums, "CNY") is None
    assert customer_tier({"CNY": Decimal("999999.99")}, minimums, "CNY") is None
    assert customer_tier({"CNY": Decimal("1000000")}, minimums, "CNY") == "key"
    assert customer_tier({"CNY": Decimal("7000000")}, minimums, "CNY") == "strategic"
    assert customer_tier({"USD": Decimal("9000000")}, minimums, "CNY") is None  # no conversion


def test_a_paused_clock_does_not_count() -> None:
    clock = SlaClock(kind=RESOLUTION, target_seconds=4 * 3600, running_since=at(2026, 11, 23, 9))
    assert clock.deadline(CAL) == at(2026, 11, 23, 13)
    clock.pause(CAL, at(2026, 11, 23, 10))  # waiting on the customer from 10:00
    assert clock.paused and clock.deadline(CAL) is None
    assert clock.used(CAL, at(2026, 11, 24, 15)) == 1 * H
    clock.resume(at(2026, 11, 24, 9))  # they replied next morning
    assert clock.deadline(CAL) == at(2026, 11, 24, 12)
    assert clock.left(CAL, at(2026, 11, 24, 11)) == 1 * H
    clock.stop(CAL, at(2026, 11, 24, 11, 30))
    assert not clock.paused and clock.used(CAL, at(2026, 11, 30, 9)) == timedelta(hours=3, minutes=30)


def test_the_ticket_runs_its_clocks_by_state() -> None:
    opened = at(2026, 11, 23, 9)
    ticket = Ticket.open(
        id=uuid.uuid4(),
        number="TK-2026-000001",
        created_at=opened,
        sla_targets={FIRST_RESPONSE: 3600, RESOLUTION: 8 * 3600},
        subject="Leak",
        description="",
        channel=Channel.EMAIL,
        type=TicketType.REPAIR,
        priority=Priority.P1,
        group="repair",
        customer_id="acme",
        customer_name="Acme",
    )
    response, resolution = ticket.sla[FIRST_RESPONSE], ticket.sla[RESOLUTION]
    ticket.assign("a", now=opened)
    ticket.start(at(2026, 11, 23, 9, 30))
    ticket.reconcile_sla(CAL, at(2026, 11, 23, 9, 30))
    assert response.met_at and response.used(CAL, at(2026, 11, 24, 9)) == timedelta(minutes=30)
    ticket.wait_for_customer(at(2026, 11, 23, 10))
    ticket.reconcile_sla(CAL, at(2026, 11, 23, 10))
    assert resolution.paused
    ticket.customer_replied(at(2026, 11, 24, 9))
    ticket.reconcile_sla(CAL, at(2026, 11, 24, 9))
    assert resolution.running and response.running and response.used_seconds == 0  # a new answer is due
    assert resolution.deadline(CAL) == at(2026, 11, 24, 16)  # 1 h used before the pause
    ticket.check_sla(RESOLUTION, CAL, at(2026, 11, 24, 15), warning_fraction=0.8)
    ticket.check_sla(RESOLUTION, CAL, at(2026, 11, 24, 16), warning_fraction=0.8)
    ticket.check_sla(RESOLUTION, CAL, at(2026, 11, 24, 17), warning_fraction=0.8)
    types = [type(e).__name__ for e, _ in ticket.take_events()]
    assert types.count("TicketSlaWarned") == 1 and types.count("TicketSlaBreached") == 1


@pytest.fixture
def around_the_clock(monkeypatch: pytest.MonkeyPatch):
    """Every moment is business time, and targets are seconds: the test does not wait for Monday."""
    for name, value in {
        "BUSINESS_OPENS": "00:00",
        "BUSINESS_CLOSES": "23:59:59.999999",
        "BUSINESS_WEEKDAYS": "[0, 1, 2, 3, 4, 5, 6]",
        "BUSINESS_HOLIDAYS_COUNTRY": "",
        "SLA_FIRST_RESPONSE_HOURS": json.dumps({"P1": 1.0 / 3600, "P2": 1, "P3": 24, "P4": 48}),
        "SLA_RESOLUTION_HOURS": json.dumps({"P1": 2.0 / 3600, "P2": 2.5 / 3600, "P3": 72, "P4": 120}),
        "SLA_WARNING_FRACTION": "0.5",
    }.items():
        # The plain prefix: pydantic-settings parses JSON values only there (the per-service override does not).
        monkeypatch.setenv(f"SALESLINE_{name}", value)
    clear_settings_caches()
    yield
    clear_settings_caches()


async def _events(db: asyncpg.Connection, event_type: str) -> list[dict]:
    rows = await db.fetch("SELECT envelope FROM service_desk.outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [json.loads(r["envelope"])["data"] for r in rows]


async def test_a_breach_fires_once_even_when_the_worker_was_down(
    system: System, clean_db: asyncpg.Connection, around_the_clock: None
) -> None:
    api = await system.client("service_desk")
    body = {
        "subject": "Line down",
        "channel": "phone",
        "type": "repair",
        "priority": "P1",
        "customer_id": "acme",
        "customer_name": "Acme",
    }
    created = await api.post("/v1/tickets", json=body, headers=AGENT)  # nobody on duty: it stays new
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert [c["kind"] for c in ticket["sla"]] == ["first_response", "resolution"]
    assert ticket["sla"][0]["target_seconds"] == pytest.approx(1.0) and not ticket["sla"][0]["paused"]
    assert await count(clean_db, "SELECT count(*) FROM service_desk.timers WHERE kind LIKE 'sla.%'") == 4

    await wait_until(
        lambda: clean_db.fetchval(
            "SELECT count(*) = 4 FROM service_desk.timers WHERE due_at < now() - interval '0.2 seconds'"
        ),
        what="every SLA deadline passed while no worker ran",
    )
    assert await _events(clean_db, "ticket.sla_breached.v1") == []

    await system.start_worker("service_desk")
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) = 4 FROM service_desk.timers WHERE fired_at IS NOT NULL"),
        what="the late timers to fire",
    )
    await wait_until(lambda: clean_db.fetchval("SELECT 1"), timeout=1)  # a few more polls
    breached = await _events(clean_db, "ticket.sla_breached.v1")
    assert sorted(e["kind"] for e in breached) == ["first_response", "resolution"]
    assert all(e["escalated_to"] == "support_lead" and e["priority"] == "P1" for e in breached)
    assert sorted(e["kind"] for e in await _events(clean_db, "ticket.sla_warned.v1")) == [
        "first_response",
        "resolution",
    ]
    shown = (await api.get(f"/v1/tickets/{ticket['id']}", headers=AGENT)).json()["sla"]
    assert all(c["breached_at"] and c["left_seconds"] < 0 for c in shown)
    assert await count(clean_db, "SELECT max(attempts) FROM service_desk.timers") == 0

    # The breaches wait in the support lead's queue until a lead acknowledges them.
    queue = await api.get("/v1/escalations", params={"status": "open", "level": "breach"}, headers=LEAD)
    assert queue.status_code == 200, queue.text
    breaches = queue.json()["items"]
    assert sorted((e["kind"], e["escalated_to"], e["ticket_number"]) for e in breaches) == [
        ("first_response", "support_lead", ticket["number"]),
        ("resolution", "support_lead", ticket["number"]),
    ]
    warnings = (await api.get("/v1/escalations", params={"level": "warning"}, headers=LEAD)).json()["items"]
    assert sorted((e["kind"], e["escalated_to"]) for e in warnings) == [
        ("first_response", "assignee"),
        ("resolution", "assignee"),
    ]
    paged = await api.get("/v1/escalations", params={"limit": 3}, headers=LEAD)
    assert len(paged.json()["items"]) == 3 and paged.json()["next_cursor"]
    assert (await api.get("/v1/escalations", headers=AGENT)).json()["items"] == []  # not their ticket
    url = f"/v1/escalations/{breaches[0]['id']}"
    assert (await api.get(url, headers=AGENT)).status_code == 404
    assert (await api.post(f"{url}/acknowledge", headers=AGENT)).status_code == 403
    assert (await api.post(f"{url}/acknowledge", headers={**LEAD, "If-Match": '"7"'})).status_code == 412
    acked = await api.post(f"{url}/acknowledge", json={"note": "called the customer"}, headers=LEAD)
    assert acked.status_code == 200, acked.text
    assert (acked.json()["status"], acked.json()["acknowledged_by"], acked.json()["note"]) == (
        "acknowledged",
        "lead-1",
        "called the customer",
    )
    again = await api.post(f"{url}/acknowledge", headers=LEAD)
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
    still_open = await api.get("/v1/escalations", params={"status": "open", "level": "breach"}, headers=LEAD)
    assert [e["id"] for e in still_open.json()["items"]] == [breaches[1]["id"]]
    bad = await api.get("/v1/escalations", params={"status": "closed"}, headers=LEAD)
    assert bad.status_code == 422


async def test_waiting_on_the_customer_pauses_the_resolution_clock(
    system: System, clean_db: asyncpg.Connection, around_the_clock: None
) -> None:
    await system.start_worker("service_desk")
    api = await system.client("service_desk")
    await api.put("/v1/agents/a1", json={"name": "A1", "groups": ["general"], "capacity": 5}, headers=LEAD)
    body = {
        "subject": "How?",
        "channel": "chat",
        "type": "inquiry",
        "priority": "P2",
        "customer_id": "c",
        "customer_name": "C",
    }
    ticket = (await api.post("/v1/tickets", json=body, headers=AGENT)).json()
    url = f"/v1/tickets/{ticket['id']}"
    await api.post(f"{url}/start", headers=AGENT)
    waiting = (await api.post(f"{url}/wait-for-customer", headers=AGENT)).json()
    resolution = waiting["sla"][1]
    assert resolution["kind"] == "resolution" and resolution["paused"] and resolution["deadline"] is None
    assert waiting["sla"][0]["met_at"]  # first response given
    await wait_until(
        lambda: clean_db.fetchval(
            "SELECT now() > $1::timestamptz + interval '3 seconds'", datetime.fromisoformat(waiting["updated_at"])
        ),
        timeout=10,
    )
    assert await _events(clean_db, "ticket.sla_breached.v1") == []  # paused past its target: no breach

    resumed = (await api.post(f"{url}/customer-replied", headers=AGENT)).json()
    clock = resumed["sla"][1]
    assert not clock["paused"] and clock["used_seconds"] < 1.0 and clock["left_seconds"] > 1.5
    assert resumed["sla"][0]["met_at"] is None  # the reply is waiting for an answer again
    breached = await wait_until(lambda: _events(clean_db, "ticket.sla_breached.v1"), what="the resolution breach")
    assert [e["kind"] for e in breached] == ["resolution"]
    # The assignee sees their ticket's warning and breach; the breach is escalated to the lead.
    mine = (await api.get("/v1/escalations", headers=auth("a1", "support_agent"))).json()["items"]
    assert sorted((e["level"], e["escalated_to"], e["assignee_id"]) for e in mine) == [
        ("breach", "support_lead", "a1"),
        ("warning", "assignee", "a1"),
    ]
