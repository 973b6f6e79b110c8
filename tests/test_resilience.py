"""Nothing lost, nothing doubled: broker restarts, killed workers, poison events, timers
that fall due while their worker is down. Everything here is real: RabbitMQ is stopped and
started again, worker processes get SIGKILL."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import aio_pika
import asyncpg
import httpx
import pytest

from services.orders.db import platform_tables as order_tables
from shared.bus import dead_letter_queue_name
from shared.db import create_engine
from shared.events import ContractSigned, make_envelope
from shared.inbox import ConsumerRunner, Subscription
from shared.ops import list_dead_letters, replay_dead_letters
from shared.uow import UnitOfWork
from tests.conftest import ROOT, System, settings_for, spawn, wait_until
from tests.helpers import count, sign_contracts
from tests.test_docs_offline import free_port
from tests.test_pipeline import publish_raw

pytestmark = pytest.mark.slow


def broker(action: str) -> None:
    """Stop or start the test RabbitMQ for real."""
    port = str(urlparse(os.environ["SALESLINE_AMQP_URL"]).port)
    env = dict(os.environ, SALESLINE_AMQP_PORT=port)
    subprocess.run(["bash", str(ROOT / "scripts" / "infra.sh"), f"rabbitmq-{action}"], check=True, env=env)


async def orders_count(db: asyncpg.Connection) -> int:
    return await count(db, "SELECT count(*) FROM orders.orders")


async def test_a_thousand_events_survive_a_broker_restart(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("contracts")
    await system.start_worker("orders")
    producing = asyncio.create_task(sign_contracts(1000))
    await wait_until(lambda: _at_least(clean_db, 100), timeout=60, what="the first orders")
    broker("stop")
    await asyncio.sleep(1.0)  # producers keep committing into the outbox meanwhile
    broker("start")
    await producing

    async def all_there():
        return await orders_count(clean_db) >= 1000

    await wait_until(all_there, timeout=120, interval=0.2, what="1000 orders after the restart")
    await asyncio.sleep(1.0)
    assert await orders_count(clean_db) == 1000
    assert await count(clean_db, "SELECT count(DISTINCT contract_id) FROM orders.orders") == 1000
    assert await count(clean_db, "SELECT count(*) FROM orders.inbox") == 1000


async def _at_least(db: asyncpg.Connection, n: int) -> bool:
    return await orders_count(db) >= n


async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    system: System, clean_db: asyncpg.Connection
) -> None:
    await system.start_worker("contracts")
    worker = spawn("services.orders.worker", log_name="orders-worker-kill")
    try:
        producing = asyncio.create_task(sign_contracts(400))
        await wait_until(lambda: _at_least(clean_db, 30), timeout=60, what="the worker to start consuming")
        worker.kill()  # SIGKILL: no cleanup, unacked deliveries and an open transaction die with it
        worker.wait(timeout=10)
        killed_at = await orders_count(clean_db)
        await producing
        metrics_port = str(free_port())
        worker = spawn(
            "services.orders.worker", log_name="orders-worker-kill", SALESLINE_WORKER_METRICS_PORT=metrics_port
        )
        await wait_until(lambda: _at_least(clean_db, 400), timeout=90, interval=0.2, what="400 orders")
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        consumed = re.search(r'salesline_events_consumed_total\{consumer="orders.contract_signed"\} (\S+)', metrics)
        assert consumed and float(consumed.group(1)) == 400 - killed_at
        await asyncio.sleep(1.0)
        assert killed_at < 400, "the kill should land mid-stream"
        assert await orders_count(clean_db) == 400
        assert await count(clean_db, "SELECT count(DISTINCT contract_id) FROM orders.orders") == 400
    finally:
        worker.kill()
        worker.wait(timeout=10)


async def test_a_poison_event_is_dead_lettered_while_the_rest_flows_and_replays_once(
    bus: str, clean_db: asyncpg.Connection
) -> None:
    settings = settings_for("orders")
    engine = create_engine(settings)
    effects: list[str] = []
    fixed = False

    async def handler(event: ContractSigned, uow: UnitOfWork) -> None:
        if event.customer_id == "poison" and not fixed:
            raise ValueError("cannot handle this customer yet")
        effects.append(event.customer_id)

    consumer = "extra.0"
    runner = ConsumerRunner(
        settings,
        [Subscription(consumer, handler, events=(ContractSigned,))],
        lambda: UnitOfWork(engine, order_tables, settings.source),
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    try:
        await asyncio.sleep(0.5)  # topology declared
        poison = _signed("poison")
        await publish_raw(poison)
        for i in range(20):
            await publish_raw(_signed(f"good-{i}"))

        async def good_ones():
            return len([e for e in effects if e.startswith("good")]) == 20

        await wait_until(good_ones, what="the events behind the poison one")

        async def dead_lettered():
            return len(await list_dead_letters(settings, consumer)) == 1

        await wait_until(dead_lettered, timeout=20, what="the poison event in the dead-letter queue")
        [letter] = await list_dead_letters(settings, consumer)
        assert letter.event_id == str(poison.id)
        assert letter.retries == len(settings.retry_delays_ms) + 1
        assert "cannot handle this customer yet" in letter.error

        fixed = True  # the "fix" is deployed
        replayed = await replay_dead_letters(settings, consumer)
        assert [r.event_id for r in replayed] == [str(poison.id)]

        async def poison_handled():
            return "poison" in effects

        await wait_until(poison_handled, what="the replayed event")
        await publish_raw(poison)  # a second replay of an already-handled event changes nothing
        await asyncio.sleep(0.5)
        assert effects.count("poison") == 1
        assert len(effects) == 21
        assert await count(clean_db, "SELECT count(*) FROM orders.inbox WHERE consumer = $1", consumer) == 21
        assert await _queue_depth(settings, dead_letter_queue_name(settings.queue_name(consumer))) == 0
    finally:
        stopping.set()
        await task
        await engine.dispose()


def _signed(customer_id: str):
    return make_envelope(
        ContractSigned(
            contract_id=uuid.uuid4(),
            contract_number="HT-2026-999999",
            customer_id=customer_id,
            customer_name=customer_id,
            owner_id="rep-1",
            currency="CNY",
            lines=(),
            subtotal_amount="1.00",
            total_amount="1.00",
            payment_terms="net 30",
            signed_at=datetime.now(UTC),
        ),
        source="/salesline/test",
        subject=customer_id,
    )


async def _queue_depth(settings, queue: str) -> int:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count


async def test_a_timer_due_while_its_worker_was_down_fires_once_after_restart(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import clear_settings_caches

    monkeypatch.setenv("SALESLINE_SERVICE_DESK_SURVEY_REMINDER_AFTER_SECONDS", "1")
    clear_settings_caches()
    await system.start_worker("contracts")
    await system.start_worker("orders")
    await system.start_worker("service_desk")
    [contract_id] = await sign_contracts(1)
    order_id = await wait_until(
        lambda: clean_db.fetchval("SELECT id FROM orders.orders WHERE contract_id = $1", contract_id),
        what="the order",
    )
    from services.orders import handlers as order_handlers
    from services.orders.db import platform_tables
    from tests.helpers import REP
    from tests.orders.helpers import approve_with_handlers

    await approve_with_handlers(order_id)  # an order enters at the approval stage
    orders_settings = settings_for("orders")
    engine = create_engine(orders_settings)
    await order_handlers.deliver_order_shortcut(
        order_id, REP, UnitOfWork(engine, platform_tables, orders_settings.source)
    )
    await engine.dispose()
    await wait_until(
        lambda: clean_db.fetchval("SELECT count(*) FROM service_desk.timers WHERE kind = 'survey.reminder'"),
        what="the survey and its reminder timer",
    )
    await system.stop_worker("service_desk")  # down before the reminder falls due
    await asyncio.sleep(1.5)
    timer = await clean_db.fetchrow("SELECT due_at, fired_at FROM service_desk.timers")
    assert timer["fired_at"] is None and timer["due_at"] < datetime.now(UTC) - timedelta(seconds=0.2)

    await system.start_worker("service_desk")
    await wait_until(
        lambda: clean_db.fetchval("SELECT fired_at FROM service_desk.timers"), what="the timer to fire after restart"
    )
    await asyncio.sleep(0.6)  # a few more polls: it must not fire again
    survey = await clean_db.fetchrow("SELECT reminded_at, version FROM service_desk.surveys")
    assert survey["reminded_at"] is not None
    assert await count(clean_db, "SELECT count(*) FROM service_desk.timers WHERE fired_at IS NOT NULL") == 1
    assert await count(clean_db, "SELECT attempts FROM service_desk.timers") == 0
