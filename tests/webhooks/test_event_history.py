"""The event history an ERP catches up from: commit order, cursors, ``after=<event id>``, type
filters, no event skipped when an earlier transaction commits late, and retention."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest

from services.webhooks.consumers import PURGE_KEY, PURGE_TIMER, ensure_purge_timer
from services.webhooks.db import platform_tables
from shared.uow import UnitOfWork
from tests.conftest import System, admin_dsn, clear_settings_caches, wait_until
from tests.webhooks.conftest import ERP, consume, order_created

pytestmark = pytest.mark.usefixtures("clean_db")


async def _visible(api: httpx.AsyncClient, count: int) -> None:
    """The newest events show once every transaction older than theirs has ended, anywhere in the
    database cluster (other test runs share it): wait for that."""

    async def shown():
        page = await api.get("/v1/events?limit=200", headers=ERP)
        return len(page.json()["items"]) >= count

    await wait_until(shown, what=f"{count} events visible")


async def _all_pages(api: httpx.AsyncClient, url: str) -> list[dict]:
    items: list[dict] = []
    while url:
        page = await api.get(url, headers=ERP)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        link = page.headers.get("link")
        url = link[1 : link.index(">")] if link else ""
    return items


async def test_pages_follow_commit_order_and_resume_after_a_cursor_or_an_event_id(
    api: httpx.AsyncClient, engine
) -> None:
    events = [order_created(f"c{i}") for i in range(7)]
    for event in events:
        await consume(engine, event)
    await _visible(api, len(events))
    listed = await _all_pages(api, "/v1/events?limit=3")
    assert [e["id"] for e in listed] == [str(e.id) for e in events]
    assert listed[0]["envelope"] == json.loads(events[0].to_json())

    first = (await api.get("/v1/events?limit=3", headers=ERP)).json()
    resumed = (await api.get(f"/v1/events?after={first['next_cursor']}", headers=ERP)).json()
    assert [e["id"] for e in resumed["items"]] == [str(e.id) for e in events[3:]]
    by_id = (await api.get(f"/v1/events?after={events[4].id}", headers=ERP)).json()
    assert [e["id"] for e in by_id["items"]] == [str(e.id) for e in events[5:]]
    assert by_id["next_cursor"] is None

    unknown = await api.get(f"/v1/events?after={uuid.uuid4()}", headers=ERP)
    assert unknown.status_code == 400 and unknown.json()["type"].endswith("unknown-event")
    assert (await api.get("/v1/events?after=garbage", headers=ERP)).status_code == 400


async def test_type_filters(api: httpx.AsyncClient, engine, clean_db: asyncpg.Connection) -> None:
    order = order_created()
    other = order_created()
    other = other.model_copy(update={"type": "contract.drafted.v1"})
    await consume(engine, order, other)
    await _visible(api, 2)
    assert [e["id"] for e in (await api.get("/v1/events?type=order.*", headers=ERP)).json()["items"]] == [str(order.id)]
    assert len((await api.get("/v1/events?type=*", headers=ERP)).json()["items"]) == 2
    exact = (await api.get("/v1/events?type=contract.drafted.v1", headers=ERP)).json()["items"]
    assert [e["id"] for e in exact] == [str(other.id)]
    assert (await api.get("/v1/events?type=order%25", headers=ERP)).json()["items"] == []  # no LIKE injection


async def test_an_event_committed_late_is_never_skipped(
    api: httpx.AsyncClient, engine, clean_db: asyncpg.Connection
) -> None:
    """A reader must not move past an event whose transaction started earlier but commits later."""
    early, late = order_created("early"), order_created("late")
    slow = await asyncpg.connect(admin_dsn())
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute(
            """INSERT INTO webhooks.event_history (id, type, source, time, envelope, created_at)
               VALUES ($1, 'order.created.v1', '/salesline/orders', now(), '{}'::jsonb, now())""",
            early.id,
        )
        await consume(engine, late)  # commits first
        seen = (await api.get("/v1/events", headers=ERP)).json()
        assert seen["items"] == [] and seen["next_cursor"] is None  # `late` waits until `early` is settled
        await transaction.commit()
    finally:
        await slow.close()
    await _visible(api, 2)
    listed = await _all_pages(api, "/v1/events")
    assert [e["id"] for e in listed] == [str(early.id), str(late.id)]


async def test_old_history_and_finished_deliveries_are_purged_by_a_timer(
    system: System, clean_db: asyncpg.Connection, engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESLINE_WEBHOOKS_EVENT_RETENTION_DAYS", "30")
    clear_settings_caches()
    await clean_db.execute(
        """INSERT INTO webhooks.subscriptions (id, owner_id, url, event_types, active, secret, version,
               created_at, updated_at)
           VALUES ('00000000-0000-0000-0000-000000000001', 'erp-1', 'https://erp.example.com/', '{*}', true, 'x', 1,
                   now(), now())"""
    )
    for age_days, delivery_status in ((31, "succeeded"), (29, "pending")):
        event = order_created(f"age-{age_days}")
        await consume(engine, event)
        await clean_db.execute(
            "UPDATE webhooks.event_history SET created_at = now() - make_interval(days => $1) WHERE id = $2",
            age_days,
            event.id,
        )
        # Deliveries keep 90 days (delivery_retention_days), and only finished ones are purged.
        await clean_db.execute(
            """UPDATE webhooks.deliveries SET created_at = now() - interval '91 days', status = $1
               WHERE event_id = $2""",
            delivery_status,
            event.id,
        )
    uow = UnitOfWork(engine, platform_tables, "/salesline/webhooks")
    async with uow:
        await ensure_purge_timer(uow)
        await ensure_purge_timer(uow)  # twice (two workers starting): one timer
        await uow.commit()
    await system.start_worker("webhooks")

    async def purged():
        return await clean_db.fetchval("SELECT count(*) FROM webhooks.event_history") == 1

    await wait_until(purged, what="the 31-day-old event purged")
    kept = await clean_db.fetchval("SELECT envelope->'data'->>'customer_id' FROM webhooks.event_history")
    assert kept == "age-29"
    statuses = sorted(r["status"] for r in await clean_db.fetch("SELECT status FROM webhooks.deliveries"))
    assert statuses == ["pending"]  # the old finished one is gone; a pending one is never purged
    timers = await clean_db.fetch(
        "SELECT due_at, fired_at FROM webhooks.timers WHERE kind = $1 AND key = $2", PURGE_TIMER, PURGE_KEY
    )
    assert len(timers) == 1 and timers[0]["fired_at"] is None  # re-armed for the next hour
    assert await clean_db.fetchval("SELECT due_at > now() + interval '50 minutes' FROM webhooks.timers")
