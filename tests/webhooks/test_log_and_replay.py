"""The delivery log (per subscription, per event, every attempt), replays that keep the original
``webhook-id``, and the test ping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from standardwebhooks import Webhook

from services.webhooks.clock import ManualClock
from services.webhooks.dispatcher import Dispatcher
from tests.webhooks.conftest import ADMIN, ERP, OTHER_ERP, consume, order_created, subscribe
from tests.webhooks.receivers import Receiver, Reply


async def test_the_log_per_subscription_and_per_event_with_every_attempt(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    flaky: Receiver = receivers().then(Reply(503, b"maintenance"), Reply(500, b"oops"))
    steady: Receiver = receivers()
    a = await subscribe(api, flaky.url)
    b = await subscribe(api, steady.url)
    events = [order_created(f"c{i}") for i in range(3)]
    await consume(engine, events[0])
    await dispatcher.run_once()  # 503
    clock.advance(5)
    await dispatcher.run_once()  # 500
    clock.advance(300)
    await dispatcher.run_once()  # 200
    await consume(engine, *events[1:])
    await dispatcher.run_once()

    per_sub = (await api.get(f"/v1/webhook-deliveries?subscription_id={a['id']}", headers=ERP)).json()["items"]
    assert len(per_sub) == 3 and {d["subscription_id"] for d in per_sub} == {a["id"]}
    assert all(d["status"] == "succeeded" for d in per_sub)
    per_event = (await api.get(f"/v1/webhook-deliveries?event_id={events[0].id}", headers=ERP)).json()["items"]
    assert {d["subscription_id"] for d in per_event} == {a["id"], b["id"]}
    both = await api.get(f"/v1/webhook-deliveries?event_id={events[0].id}&subscription_id={b['id']}", headers=ERP)
    assert len(both.json()["items"]) == 1

    retried = next(d for d in per_sub if d["attempts"] == 3)
    attempts = (await api.get(f"/v1/webhook-deliveries/{retried['id']}/attempts", headers=ERP)).json()["items"]
    assert [(x["attempt_no"], x["status_code"], x["error_class"]) for x in attempts] == [
        (1, 503, "http_status"),
        (2, 500, "http_status"),
        (3, 200, None),
    ]
    assert attempts[0]["response_body"] == "maintenance" and all(x["latency_ms"] >= 0 for x in attempts)
    assert attempts[1]["attempted_at"] > attempts[0]["attempted_at"]
    paged = await api.get(f"/v1/webhook-deliveries/{retried['id']}/attempts?limit=2", headers=ERP)
    assert len(paged.json()["items"]) == 2 and paged.json()["next_cursor"]
    link = paged.headers["link"]
    rest = await api.get(link[1 : link.index(">")], headers=ERP)
    assert [x["attempt_no"] for x in rest.json()["items"]] == [3]

    failed_first = await api.get(f"/v1/webhook-deliveries?subscription_id={a['id']}&status=failed", headers=ERP)
    assert failed_first.json()["items"] == []
    by_type = await api.get("/v1/webhook-deliveries?event_type=order.*", headers=ERP)
    assert len(by_type.json()["items"]) == 6
    assert (await api.get("/v1/webhook-deliveries?event_type=contract.*", headers=ERP)).json()["items"] == []
    assert (await api.get("/v1/webhook-deliveries", headers=OTHER_ERP)).json()["items"] == []
    assert (await api.get(f"/v1/webhook-deliveries/{retried['id']}", headers=OTHER_ERP)).status_code == 404
    assert (await api.get(f"/v1/webhook-deliveries/{retried['id']}/attempts", headers=OTHER_ERP)).status_code == 404
    assert len((await api.get("/v1/webhook-deliveries", headers=ADMIN)).json()["items"]) == 6


async def test_replaying_one_delivery_keeps_its_webhook_id(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers()
    sub = await subscribe(api, receiver.url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    [delivery] = (await api.get("/v1/webhook-deliveries", headers=ERP)).json()["items"]

    replayed = await api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=ERP)
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"
    assert replayed.json()["replays"] == 1 and replayed.json()["run_attempts"] == 0
    await dispatcher.run_once()

    first, again = receiver.requests
    assert first.webhook_id == again.webhook_id == delivery["webhook_id"] == delivery["id"]
    assert first.body == again.body
    Webhook(sub["secret"]).verify(again.body, again.headers)
    read = (await api.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=ERP)).json()
    assert read["status"] == "succeeded" and read["attempts"] == 2 and read["replays"] == 1
    assert (await api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=OTHER_ERP)).status_code == 404


async def test_replaying_a_time_range_resends_each_delivery_under_its_own_id(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers()
    sub = await subscribe(api, receiver.url)
    await consume(engine, order_created("old"))
    await clean_db.execute("UPDATE webhooks.deliveries SET created_at = created_at - interval '2 days'")
    await consume(engine, *(order_created(f"new-{i}") for i in range(3)))
    await dispatcher.run_once()
    originals = {r.webhook_id for r in receiver.requests}
    assert len(originals) == 4

    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    result = await api.post(f"/v1/webhook-subscriptions/{sub['id']}/replay", json={"created_from": since}, headers=ERP)
    assert result.status_code == 202 and result.json() == {"replayed": 3}
    await dispatcher.run_once()
    replayed = [r.webhook_id for r in receiver.requests[4:]]
    assert len(replayed) == 3 and set(replayed) < originals  # the same ids, the old one not among them

    only_failed = await api.post(
        f"/v1/webhook-subscriptions/{sub['id']}/replay",
        json={"created_from": since, "status": "failed"},
        headers=ERP,
    )
    assert only_failed.json() == {"replayed": 0}
    naive = await api.post(
        f"/v1/webhook-subscriptions/{sub['id']}/replay", json={"created_from": "2026-01-01T00:00:00"}, headers=ERP
    )
    assert naive.status_code == 422  # a time without an offset is ambiguous


async def test_replay_waits_for_an_active_subscription(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher
) -> None:
    receiver: Receiver = receivers().then(Reply(410))
    sub = await subscribe(api, receiver.url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    [delivery] = (await api.get("/v1/webhook-deliveries", headers=ERP)).json()["items"]
    assert delivery["status"] == "failed"
    refused = await api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=ERP)
    assert refused.status_code == 409
    refused = await api.post(
        f"/v1/webhook-subscriptions/{sub['id']}/replay", json={"created_from": "2020-01-01T00:00:00Z"}, headers=ERP
    )
    assert refused.status_code == 409
    await api.patch(f"/v1/webhook-subscriptions/{sub['id']}", json={"active": True}, headers=ERP)
    assert (await api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=ERP)).status_code == 202
    await dispatcher.run_once()
    assert len(receiver.requests) == 2 and receiver.requests[0].webhook_id == receiver.requests[1].webhook_id


async def test_a_replay_during_an_attempt_in_flight_wins(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers().then(Reply(500, delay=1.0))
    await subscribe(api, receiver.url)
    await consume(engine, order_created())
    assert await dispatcher.dispatch_due() == 1
    await asyncio.sleep(0.3)  # the first attempt is in flight
    [delivery] = (await api.get("/v1/webhook-deliveries", headers=ERP)).json()["items"]
    await api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=ERP)
    await dispatcher.drain()
    # The late 500 is logged but decides nothing: the replay is due now, from the top of the schedule.
    row = await clean_db.fetchrow("SELECT * FROM webhooks.deliveries")
    assert row["status"] == "pending" and row["run_attempts"] == 0 and row["attempts"] == 1
    await dispatcher.run_once()
    row = await clean_db.fetchrow("SELECT * FROM webhooks.deliveries")
    assert row["status"] == "succeeded" and row["attempts"] == 2


async def test_a_ping_is_one_signed_attempt_that_leaves_health_alone(
    api: httpx.AsyncClient, receivers, dispatcher: Dispatcher, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers().then(Reply(500), Reply(200, b"pong"))
    sub = await subscribe(api, receiver.url, active=False)  # works before the subscription is switched on
    ping = await api.post(f"/v1/webhook-subscriptions/{sub['id']}/ping", headers=ERP)
    assert ping.status_code == 202 and ping.json()["kind"] == "ping"
    assert ping.headers["location"] == f"/v1/webhook-deliveries/{ping.json()['id']}"
    await dispatcher.run_once()
    failed = (await api.get(ping.headers["location"], headers=ERP)).json()
    assert failed["status"] == "failed" and failed["last_status_code"] == 500 and failed["next_attempt_at"] is None
    read = (await api.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=ERP)).json()
    assert read["failing_since"] is None  # a ping never counts towards disabling

    second = await api.post(f"/v1/webhook-subscriptions/{sub['id']}/ping", headers=ERP)
    await dispatcher.run_once()
    body = Webhook(sub["secret"]).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert body["type"] == "webhook_subscription.pinged.v1" and body["data"]["subscription_id"] == sub["id"]
    assert receiver.requests[-1].webhook_id == second.json()["id"]
    attempts = (await api.get(f"/v1/webhook-deliveries/{second.json()['id']}/attempts", headers=ERP)).json()
    assert attempts["items"][0]["response_body"] == "pong"
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.event_history") == 0  # never on the bus
