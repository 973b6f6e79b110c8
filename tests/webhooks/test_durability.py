"""Retries are durable timers: two dispatchers never send a delivery twice on purpose, and a
worker killed mid-delivery loses nothing (the delivery goes again under the same id)."""

from __future__ import annotations

import asyncio
import collections
import signal

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from services.webhooks.clock import ManualClock
from tests.conftest import spawn, wait_until
from tests.webhooks.conftest import consume, make_dispatcher, order_created, settle, subscribe
from tests.webhooks.receivers import Receiver, Reply


async def test_two_dispatchers_send_each_delivery_once(
    api: httpx.AsyncClient, receivers, engine, settings, clock: ManualClock, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers(default=Reply(200, delay=0.01))
    await subscribe(api, receiver.url)
    first, second = make_dispatcher(settings, engine, clock), make_dispatcher(settings, engine, clock)
    stopping = asyncio.Event()
    runs = [asyncio.create_task(d.run(stopping)) for d in (first, second)]
    try:
        for batch in range(10):
            await consume(engine, *(order_created(f"c{batch}-{i}") for i in range(10)))
        await settle(lambda: len(receiver.requests) >= 100, timeout=30)
        await asyncio.sleep(0.5)  # a duplicate would have arrived by now
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*runs), timeout=30)
    counts = collections.Counter(r.webhook_id for r in receiver.requests)
    assert len(counts) == 100 and set(counts.values()) == {1}
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE status = 'succeeded'") == 100
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.delivery_attempts") == 100


@pytest.mark.slow
async def test_a_worker_killed_mid_delivery_loses_nothing(
    api: httpx.AsyncClient, receivers, engine, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers().then(Reply(200, delay=60))  # the first request hangs
    sub = await subscribe(api, receiver.url)
    event = order_created()
    await consume(engine, event)

    worker = spawn("services.webhooks.worker", log_name="webhooks-worker-kill-1")
    try:
        await settle(lambda: len(receiver.requests) == 1, timeout=30)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    delivery = await clean_db.fetchrow("SELECT * FROM webhooks.deliveries")
    assert delivery["status"] == "pending" and delivery["leased_until"] is not None  # mid-delivery, unrecorded

    again = spawn("services.webhooks.worker", log_name="webhooks-worker-kill-2")
    try:
        await settle(lambda: len(receiver.requests) == 2, timeout=30)  # once the dead worker's lease ran out

        async def succeeded():
            row = await clean_db.fetchrow("SELECT status, attempts FROM webhooks.deliveries")
            return row["status"] == "succeeded" and row

        row = await wait_until(succeeded, what="the delivery recorded as succeeded")
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
    first, second = receiver.requests
    assert first.webhook_id == second.webhook_id == str(delivery["id"])
    assert first.body == second.body
    assert row["attempts"] == 1  # the killed attempt was never recorded; the resent one was
    Webhook(sub["secret"]).verify(second.body, second.headers)
