"""The event pipeline end to end through the real broker: outbox → relay → RabbitMQ →
consumer with inbox, including duplicates, replicas and reordering of workers."""

from __future__ import annotations

import asyncio

import aio_pika
import asyncpg

from services.orders.db import platform_tables as order_tables
from services.orders.handlers import deliver_order_shortcut
from shared.db import create_engine
from shared.events import CloudEvent, make_envelope
from shared.uow import UnitOfWork
from tests.conftest import System, settings_for, wait_until
from tests.helpers import REP, count, sign_contracts
from tests.orders.helpers import approve_with_handlers


async def test_signed_contracts_become_exactly_one_order_each(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("orders")
    await system.start_worker("webhooks")  # binds every event type: nothing is unroutable
    await system.start_worker("contracts")
    contract_ids = await sign_contracts(20)

    async def all_orders():
        return await count(clean_db, "SELECT count(*) FROM orders.orders") == 20

    await wait_until(all_orders, what="20 orders")
    assert await count(clean_db, "SELECT count(DISTINCT contract_id) FROM orders.orders") == 20
    assert {r["contract_id"] for r in await clean_db.fetch("SELECT contract_id FROM orders.orders")} == set(
        contract_ids
    )
    # The relay marked every contracts outbox row sent, after its confirm.
    await wait_until(lambda: _all_sent(clean_db, "contracts"), what="contracts outbox drained")
    # Sent is not yet consumed: wait for the webhooks consumer to record each contract's drafted,
    # submitted, approved, sent_for_signature and signed.
    history = "SELECT count(*) FROM webhooks.event_history WHERE type LIKE 'contract.%'"
    await wait_until(lambda: _equals(clean_db, history, 100), what="100 contract events in the history")
    await asyncio.sleep(0.3)
    assert await count(clean_db, history) == 100


async def _equals(db: asyncpg.Connection, sql: str, expected: int) -> bool:
    return await count(db, sql) == expected


async def _all_sent(db: asyncpg.Connection, schema: str) -> bool:
    return await count(db, f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL") == 0


async def test_two_relays_and_two_consumers_of_each_kind(system: System, clean_db: asyncpg.Connection) -> None:
    """Replicas share the work: nothing lost, nothing doubled."""
    contract_ids_task = asyncio.create_task(sign_contracts(150))
    second = System()
    try:
        for s in (system, second):
            await s.start_worker("contracts")
            await s.start_worker("orders")
            await s.start_worker("leads")
        await contract_ids_task

        async def done():
            return await count(clean_db, "SELECT count(*) FROM orders.orders") == 150

        await wait_until(done, timeout=40, what="150 orders")
        await wait_until(lambda: _accounts(clean_db, 150), timeout=20, what="150 signed accounts")
        await asyncio.sleep(0.5)  # anything doubled would show up by now
        assert await count(clean_db, "SELECT count(*) FROM orders.orders") == 150
        assert await count(clean_db, "SELECT count(*) FROM orders.inbox") == 150
        assert await count(clean_db, "SELECT count(*) FROM leads.accounts WHERE signed_contracts <> 1") == 0
    finally:
        await second.close()


async def _accounts(db: asyncpg.Connection, expected: int) -> bool:
    return await count(db, "SELECT count(*) FROM leads.accounts WHERE classification = 'signed'") == expected


async def test_each_consumer_given_its_event_twice_has_one_effect(system: System, clean_db: asyncpg.Connection) -> None:
    """Deliver the very same envelope twice (same id) to every consumer of contract.signed
    and order.delivered: one order, one account change, one survey, one history row."""
    for service in ("orders", "leads", "service_desk", "webhooks", "contracts"):
        await system.start_worker(service)
    [contract_id] = await sign_contracts(1)
    await wait_until(lambda: _one(clean_db, "SELECT count(*) FROM orders.orders"), what="the order")
    envelope_row = await clean_db.fetchrow(
        "SELECT envelope FROM contracts.outbox WHERE event_type = 'contract.signed.v1'"
    )
    envelope = CloudEvent.model_validate_json(envelope_row["envelope"])
    await publish_raw(envelope, times=2)
    await asyncio.sleep(1.0)
    assert await count(clean_db, "SELECT count(*) FROM orders.orders WHERE contract_id = $1", contract_id) == 1
    assert await count(clean_db, "SELECT signed_contracts FROM leads.accounts") == 1
    assert await count(clean_db, "SELECT count(*) FROM webhooks.event_history WHERE id = $1", envelope.id) == 1
    assert await count(clean_db, "SELECT count(*) FROM orders.inbox WHERE event_id = $1", envelope.id) == 1

    # The same contract signed again under a new event id (a producer bug): the state guard holds.
    await publish_raw(make_envelope(envelope.typed_data(), source=envelope.source, subject=envelope.subject))
    await asyncio.sleep(0.5)
    assert await count(clean_db, "SELECT count(*) FROM orders.orders WHERE contract_id = $1", contract_id) == 1

    order_id = await clean_db.fetchval("SELECT id FROM orders.orders")
    await approve_with_handlers(order_id)  # an order enters at the approval stage
    orders_settings = settings_for("orders")
    engine = create_engine(orders_settings)
    try:
        await deliver_order_shortcut(order_id, REP, UnitOfWork(engine, order_tables, orders_settings.source))
    finally:
        await engine.dispose()
    await wait_until(lambda: _one(clean_db, "SELECT count(*) FROM service_desk.surveys"), what="the survey")
    delivered_row = await clean_db.fetchrow(
        "SELECT envelope FROM orders.outbox WHERE event_type = 'order.delivered.v1'"
    )
    delivered = CloudEvent.model_validate_json(delivered_row["envelope"])
    await publish_raw(delivered, times=2)
    await asyncio.sleep(1.0)
    assert await count(clean_db, "SELECT count(*) FROM service_desk.surveys") == 1
    assert await count(clean_db, "SELECT count(*) FROM service_desk.timers") == 1
    assert await count(clean_db, "SELECT count(*) FROM service_desk.outbox WHERE event_type = 'survey.sent.v1'") == 1


async def _one(db: asyncpg.Connection, sql: str) -> bool:
    return await count(db, sql) == 1


async def publish_raw(envelope: CloudEvent, *, times: int = 1) -> None:
    """Publish an envelope as another service's relay would (used to redeliver on purpose)."""
    settings = settings_for("orders")
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        for _ in range(times):
            await exchange.publish(
                aio_pika.Message(envelope.to_json().encode(), message_id=str(envelope.id), type=envelope.type),
                routing_key=envelope.type,
            )
