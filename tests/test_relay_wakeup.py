"""The outbox relay is woken after a commit, without a NOTIFY inside the business transaction.

A NOTIFY in every transaction serialised all the database's commits (see ``shared.wakeup``):
the migrations drop the trigger, and the unit of work wakes the relays after it committed.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.wakeup import close_wakers, notify_channel, wake_outbox_relays
from tests.conftest import SERVICES, System, auth, clear_settings_caches, settings_for, wait_until

CONTRACT = {
    "customer_id": "wake-1",
    "customer_name": "Wake Ltd.",
    "currency": "CNY",
    "payment_terms": "net 30",
    "lines": [{"sku": "P-1", "description": "Pump", "quantity": "1", "unit_price": "100.00"}],
}


async def test_no_outbox_has_a_notify_trigger(clean_db: asyncpg.Connection) -> None:
    triggers = await clean_db.fetch(
        "SELECT c.relnamespace::regnamespace::text AS schema FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname = 'outbox_notify'"
    )
    assert triggers == []
    outboxes = await clean_db.fetchval(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'outbox' AND schemaname = ANY($1)", list(SERVICES)
    )
    assert outboxes == len(SERVICES)  # the check above looked at every service


async def test_a_commit_wakes_the_relay_long_before_its_poll(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESLINE_RELAY_POLL_SECONDS", "60")
    clear_settings_caches()
    assert settings_for("contracts").relay_poll_seconds == 60
    await system.start_worker("contracts")
    await asyncio.sleep(1.0)  # the relay's first (empty) claim is behind it; the next poll is a minute away
    contracts = await system.client("contracts")

    created = await contracts.post("/v1/contracts", json=CONTRACT, headers=auth("rep-1", "sales_rep"))
    assert created.status_code == 201, created.text

    async def sent() -> bool:
        return await clean_db.fetchval("SELECT count(*) FROM contracts.outbox WHERE sent_at IS NOT NULL") == 1

    await wait_until(sent, timeout=5, what="the relay publishing the drafted contract's event")


async def test_pokes_that_arrive_together_are_one_notification(clean_db: asyncpg.Connection) -> None:
    from services.orders.db import platform_tables
    from shared.db import create_engine

    received: list[str] = []
    channel = notify_channel("orders")

    def on_notify(*args: object) -> None:
        received.append(str(args[2]))

    await clean_db.add_listener(channel, on_notify)
    engine = create_engine(settings_for("orders"))
    try:
        for _ in range(100):
            wake_outbox_relays(engine, platform_tables.outbox.schema)

        async def notified() -> bool:
            return len(received) >= 1

        await wait_until(notified, timeout=5, what="the wake-up notification")
        await asyncio.sleep(0.3)
        assert received == [channel]
    finally:
        await clean_db.remove_listener(channel, on_notify)
        await engine.dispose()


async def test_a_unit_of_work_wakes_a_channel_only_after_it_committed(clean_db: asyncpg.Connection) -> None:
    """How the webhooks consumer wakes the dispatchers: never by a NOTIFY inside its transaction."""
    from services.webhooks.db import DELIVERY_NOTIFY_CHANNEL, platform_tables
    from shared.db import create_engine
    from shared.uow import UnitOfWork

    received: list[str] = []

    def on_notify(*args: object) -> None:
        received.append(str(args[2]))

    await clean_db.add_listener(DELIVERY_NOTIFY_CHANNEL, on_notify)
    engine = create_engine(settings_for("webhooks"))
    try:
        uow = UnitOfWork(engine, platform_tables, "/salesline/webhooks")
        async with uow:
            uow.wake_after_commit(DELIVERY_NOTIFY_CHANNEL)  # rolled back: nobody is woken
        async with uow:
            uow.wake_after_commit(DELIVERY_NOTIFY_CHANNEL)
            await asyncio.sleep(0.3)
            assert received == []  # not before the commit
            await uow.commit()

        async def notified() -> bool:
            return len(received) >= 1

        await wait_until(notified, timeout=5, what="the dispatchers' wake-up")
        await asyncio.sleep(0.3)
        assert received == [DELIVERY_NOTIFY_CHANNEL]
    finally:
        await clean_db.remove_listener(DELIVERY_NOTIFY_CHANNEL, on_notify)
        await close_wakers(engine)
        await engine.dispose()
