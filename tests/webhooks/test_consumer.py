"""From the bus to deliveries: the all_events consumer makes one delivery per matching active
subscription, once, even when the event arrives twice; and the whole path from a signed
contract to a verified webhook."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from services.webhooks.dispatcher import Dispatcher
from services.webhooks.domain import pattern_matches
from shared.events import CONTENT_TYPE, EVENT_TYPES, CloudEvent
from tests.conftest import System, settings_for, wait_until
from tests.helpers import sign_contracts
from tests.webhooks.conftest import ERP, consume, order_created, settle, subscribe
from tests.webhooks.receivers import Receiver


async def _publish(envelope: CloudEvent) -> None:
    settings = settings_for("webhooks")
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.exchange)
        message = aio_pika.Message(
            envelope.to_json().encode(), message_id=str(envelope.id), type=envelope.type, content_type=CONTENT_TYPE
        )
        await exchange.publish(message, routing_key=envelope.type)


async def test_the_same_event_twice_on_the_bus_makes_one_delivery(
    system: System, api: httpx.AsyncClient, clean_db: asyncpg.Connection, engine
) -> None:
    await subscribe(api, "https://erp.example.com/hooks", event_types=["order.*"])
    await system.start_worker("webhooks")
    event = order_created()
    await _publish(event)
    await _publish(event)  # a redelivery, as after a relay crash

    async def handled_twice():
        seen = await clean_db.fetchval("SELECT count(*) FROM webhooks.inbox WHERE event_id = $1", event.id)
        return seen == 1 and await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries") >= 1

    await wait_until(handled_twice, what="the event consumed")
    await asyncio.sleep(0.5)  # the duplicate has arrived by now, and been absorbed
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE event_id = $1", event.id) == 1
    # Even past the inbox (the handler itself given the event twice), still one delivery.
    await consume(engine, event)
    await consume(engine, event, event)
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE event_id = $1", event.id) == 1
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.event_history WHERE id = $1", event.id) == 1


async def test_only_active_subscriptions_whose_patterns_match_get_a_delivery(
    api: httpx.AsyncClient, clean_db: asyncpg.Connection, engine
) -> None:
    subs = {
        name: await subscribe(api, f"https://{name}.example.com/", event_types=patterns)
        for name, patterns in {
            "orders": ["order.*"],
            "created": ["order.created.*"],
            "exact": ["order.created.v1"],
            "all": ["*"],
            "contracts": ["contract.*"],
            "other": ["order.delivered.v1", "survey.*"],
        }.items()
    }
    paused = await subscribe(api, "https://paused.example.com/", event_types=["*"], active=False)
    await consume(engine, order_created())
    rows = await clean_db.fetch("SELECT subscription_id::text AS id FROM webhooks.deliveries")
    got = {r["id"] for r in rows}
    assert got == {subs[n]["id"] for n in ("orders", "created", "exact", "all")}
    assert paused["id"] not in got


@pytest.mark.parametrize(
    "pattern",
    ["*", "order.*", "order.created.*", "order.created.v1", "contract.*", "lead.returned_to_pool.*"],
)
async def test_the_sql_matcher_agrees_with_the_domain_rule(
    api: httpx.AsyncClient, clean_db: asyncpg.Connection, engine, pattern: str
) -> None:
    """Every catalog type, against the SQL in db.record_event and against pattern_matches."""
    if pattern == "lead.returned_to_pool.*":
        # '_' would be a LIKE wildcard; the matcher takes it literally.
        types = ["lead.returned_to_pool.v1", "lead.returnedXtoXpool.v1"]
    else:
        types = sorted(EVENT_TYPES)
    await clean_db.execute(
        """INSERT INTO webhooks.subscriptions (id, owner_id, url, event_types, active, secret, version,
               created_at, updated_at)
           VALUES (gen_random_uuid(), 'erp-1', 'https://erp.example.com/', $1, true, 'x', 1, now(), now())""",
        [pattern],
    )
    for event_type in types:
        event = CloudEvent.model_validate({**json.loads(order_created().to_json()), "type": event_type})
        await consume(engine, event)
        made = await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE event_id = $1", event.id)
        assert made == (1 if pattern_matches(pattern, event_type) else 0), (pattern, event_type)


async def test_from_a_signed_contract_to_a_verified_webhook(
    system: System, api: httpx.AsyncClient, receivers, dispatcher: Dispatcher, clean_db: asyncpg.Connection
) -> None:
    """contracts → outbox → relay → RabbitMQ → webhooks consumer → dispatcher → receiver."""
    receiver: Receiver = receivers()
    sub = await subscribe(api, receiver.url, event_types=["contract.signed.v1"])
    await system.start_worker("webhooks")
    await system.start_worker("contracts")
    stopping = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stopping))
    try:
        [contract_id] = await sign_contracts(1)
        await settle(lambda: len(receiver.requests) == 1, timeout=20)
    finally:
        stopping.set()
        await asyncio.wait_for(running, timeout=20)
    payload = Webhook(sub["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert payload["type"] == "contract.signed.v1" and payload["data"]["contract_id"] == str(contract_id)
    assert payload["source"] == "/salesline/contracts"

    # The same event is in the history, and its delivery in the log.
    async def in_history():
        history = await api.get("/v1/events?type=contract.signed.v1", headers=ERP)
        return [e["id"] for e in history.json()["items"]]

    assert await wait_until(in_history, what="the event in the history") == [payload["id"]]
    log = await api.get(f"/v1/webhook-deliveries?event_id={payload['id']}", headers=ERP)
    [delivery] = log.json()["items"]
    assert delivery["status"] == "succeeded" and delivery["webhook_id"] == receiver.requests[0].webhook_id
