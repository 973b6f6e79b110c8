"""Warranty: registered once per delivered unit from order.delivered, and the coverage check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg

from services.service_desk.domain import Warranty, add_months, check_coverage
from tests.conftest import System, auth, wait_until
from tests.helpers import count
from tests.service_desk.events import envelope, order_delivered
from tests.test_pipeline import publish_raw

SUPPORT = auth("agent-1", "support_agent")
OTHER_REP = auth("rep-2", "sales_rep")
OWNER_REP = auth("rep-1", "sales_rep")


def test_months_are_calendar_months() -> None:
    start = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    assert add_months(start, 1) == datetime(2026, 2, 28, 8, 0, tzinfo=UTC)
    assert add_months(datetime(2027, 1, 31, tzinfo=UTC), 13) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(start, 12) == datetime(2027, 1, 31, 8, 0, tzinfo=UTC)


def test_one_warranty_per_serial_or_line_and_none_without_warranty_months() -> None:
    event = order_delivered()
    warranties = Warranty.register_delivery(event, now=datetime.now(UTC))
    assert [(w.line_no, w.serial_number, w.quantity) for w in warranties] == [
        (1, "SN-1", 1),
        (1, "SN-2", 1),
        (3, None, 5),
    ]
    assert all(w.starts_at == event.delivered_at for w in warranties)
    assert [w.ends_at.date().isoformat() for w in warranties] == ["2027-01-31", "2027-01-31", "2026-02-28"]
    again = Warranty.register_delivery(event, now=datetime.now(UTC), already={w.unit for w in warranties})
    assert again == []


def test_coverage_says_why() -> None:
    [first, *_] = Warranty.register_delivery(order_delivered(), now=datetime.now(UTC))
    inside = check_coverage([first], datetime(2026, 6, 1, tzinfo=UTC), what="serial number SN-1")
    assert inside.covered and inside.reason == "covered" and "2027-01-31" in inside.detail
    after = check_coverage([first], datetime(2027, 1, 31, 8, 0, tzinfo=UTC), what="serial number SN-1")
    assert not after.covered and after.reason == "expired" and "ended" in after.detail
    before = check_coverage([first], datetime(2026, 1, 1, tzinfo=UTC), what="serial number SN-1")
    assert not before.covered and before.reason == "not_started"
    unknown = check_coverage([], datetime(2026, 6, 1, tzinfo=UTC), what="serial number X")
    assert not unknown.covered and unknown.reason == "not_registered" and "serial number X" in unknown.detail


async def test_a_delivery_twice_registers_one_warranty_set(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("service_desk")
    event = order_delivered()
    first = envelope(event)
    await publish_raw(first, times=2)  # the same envelope redelivered
    await publish_raw(envelope(event))  # the same delivery under a new event id
    await wait_until(lambda: _inbox_count(clean_db), what="both deliveries handled")
    await asyncio.sleep(0.5)
    assert await count(clean_db, "SELECT count(*) FROM service_desk.warranties") == 3
    assert (
        await count(clean_db, "SELECT count(*) FROM service_desk.outbox WHERE event_type = 'warranty.registered.v1'")
        == 3
    )
    assert await count(clean_db, "SELECT count(*) FROM service_desk.surveys") == 1

    api = await system.client("service_desk")
    by_serial = await api.get("/v1/warranties", params={"serial_number": "SN-2"}, headers=SUPPORT)
    assert by_serial.status_code == 200, by_serial.text
    [warranty] = by_serial.json()["items"]
    assert warranty["order_id"] == str(event.order_id) and warranty["ends_at"].startswith("2027-01-31")
    by_order = await api.get("/v1/warranties", params={"order_id": str(event.order_id), "limit": 2}, headers=OWNER_REP)
    assert len(by_order.json()["items"]) == 2 and by_order.json()["next_cursor"]
    assert (await api.get("/v1/warranties", params={"serial_number": "SN-2"}, headers=OTHER_REP)).json()["items"] == []
    assert (await api.get(f"/v1/warranties/{warranty['id']}", headers=OTHER_REP)).status_code == 404

    covered = await api.get(
        "/v1/warranties/coverage", params={"serial_number": "SN-1", "at": "2026-12-01T00:00:00Z"}, headers=SUPPORT
    )
    assert covered.status_code == 200, covered.text
    assert covered.json()["covered"] is True and covered.json()["warranty"]["serial_number"] == "SN-1"
    expired = await api.get(
        "/v1/warranties/coverage",
        params={"order_id": str(event.order_id), "line_no": 3, "at": "2026-03-01T00:00:00+08:00"},
        headers=SUPPORT,
    )
    assert expired.json()["covered"] is False and expired.json()["reason"] == "expired"
    no_warranty = await api.get(
        "/v1/warranties/coverage", params={"order_id": str(event.order_id), "line_no": 2}, headers=SUPPORT
    )
    assert no_warranty.json() | {"warranty": None} == {
        "covered": False,
        "reason": "not_registered",
        "detail": f"no warranty is registered for line 2 of order {event.order_id}",
        "warranty": None,
    }
    for bad in ({}, {"serial_number": "SN-1", "order_id": str(event.order_id)}, {"line_no": 1}):
        refused = await api.get("/v1/warranties/coverage", params=bad, headers=SUPPORT)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    naive = await api.get(
        "/v1/warranties/coverage", params={"serial_number": "SN-1", "at": "2026-01-01T00:00"}, headers=SUPPORT
    )
    assert naive.status_code == 422
    assert (await api.get("/v1/warranties/coverage", params={"serial_number": "SN-1"})).status_code == 401


async def _inbox_count(db: asyncpg.Connection) -> bool:
    return await count(db, "SELECT count(*) FROM service_desk.inbox") == 2
