"""Delivery to local receivers: Standard Webhooks signatures checked by the ``standardwebhooks``
library, the published retry schedule driven by a manual clock, Retry-After, 410, redirects,
hangs, slow endpoints beside healthy ones, endpoint health, secret rotation and the address
rules at connect time."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from datetime import timedelta

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.webhooks.clock import ManualClock
from services.webhooks.config import DEFAULT_RETRY_SCHEDULE, WebhooksSettings
from services.webhooks.dispatcher import Dispatcher
from tests.webhooks.conftest import ERP, consume, make_dispatcher, order_created, settle, strict, subscribe
from tests.webhooks.receivers import Receiver, Reply


async def _delivery(db: asyncpg.Connection, event_id=None) -> asyncpg.Record:
    if event_id is None:
        return await db.fetchrow("SELECT * FROM webhooks.deliveries WHERE kind = 'event'")
    return await db.fetchrow("SELECT * FROM webhooks.deliveries WHERE event_id = $1", event_id)


async def _attempts(db: asyncpg.Connection, delivery_id) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM webhooks.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt_no", delivery_id
    )


async def test_a_delivery_is_signed_per_standard_webhooks_and_carries_the_cloudevent(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clean_db: asyncpg.Connection
) -> None:
    receiver: Receiver = receivers()
    sub = await subscribe(api, receiver.url, event_types=["order.*"])
    event = order_created()
    await consume(engine, event)
    assert await dispatcher.run_once() == 1

    [request] = receiver.requests
    payload = Webhook(sub["secret"]).verify(request.body, request.headers)  # as an ERP would
    assert payload == json.loads(event.to_json())
    assert payload["specversion"] == "1.0" and payload["type"] == "order.created.v1"
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
    delivery = await _delivery(clean_db)
    assert request.webhook_id == str(delivery["id"])
    assert delivery["status"] == "succeeded" and delivery["next_attempt_at"] is None
    [attempt] = await _attempts(clean_db, delivery["id"])
    assert attempt["status_code"] == 200 and attempt["error_class"] is None
    assert attempt["response_body"] == "ok" and attempt["latency_ms"] >= 0 and attempt["url"] == receiver.url

    with pytest.raises(WebhookVerificationError):
        Webhook(sub["secret"]).verify(request.body.replace(b"3300.00", b"1.00"), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)


async def test_failures_follow_the_published_schedule_with_one_webhook_id(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db
) -> None:
    """500 nine times and the tenth attempt succeeds: 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h."""
    receiver: Receiver = receivers().then(*[Reply(500, b"database is down")] * 9)
    sub = await subscribe(api, receiver.url)
    await consume(engine, order_created())
    start = clock.now()
    assert await dispatcher.run_once() == 1
    for number, delay in enumerate(DEFAULT_RETRY_SCHEDULE[1:], start=2):
        delivery = await _delivery(clean_db)
        assert delivery["status"] == "pending"
        assert delivery["next_attempt_at"] - delivery["last_attempt_at"] == timedelta(seconds=delay)
        clock.advance(delay - 1)
        assert await dispatcher.run_once() == 0, f"attempt {number} went early"
        clock.advance(1)
        assert await dispatcher.run_once() == 1, f"attempt {number} did not go when due"
        assert len(receiver.requests) == number

    delivery = await _delivery(clean_db)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 10
    attempts = await _attempts(clean_db, delivery["id"])
    assert [a["status_code"] for a in attempts] == [500] * 9 + [200]
    assert {a["error_class"] for a in attempts[:9]} == {"http_status"}
    assert attempts[0]["response_body"] == "database is down"
    assert attempts[-1]["attempted_at"] - start == timedelta(seconds=sum(DEFAULT_RETRY_SCHEDULE))
    assert {r.webhook_id for r in receiver.requests} == {str(delivery["id"])}
    for request in receiver.requests:
        Webhook(sub["secret"]).verify(request.body, request.headers)
    subscription = (await api.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=ERP)).json()
    assert subscription["active"] and subscription["failing_since"] is None  # the success cleared it


async def test_the_schedule_ends_in_failed_after_ten_attempts(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db
) -> None:
    receiver: Receiver = receivers(default=Reply(500))
    sub = await subscribe(api, receiver.url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    for delay in DEFAULT_RETRY_SCHEDULE[1:]:
        clock.advance(delay)
        await dispatcher.run_once()
    clock.advance(days=3)
    assert await dispatcher.run_once() == 0
    delivery = await _delivery(clean_db)
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    assert len(receiver.requests) == 10
    # About 3 days of failure: not yet the 5 that disable an endpoint.
    subscription = (await api.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=ERP)).json()
    assert subscription["active"] and subscription["failing_since"] is not None


async def test_retry_after_on_429_and_503_is_honoured(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db
) -> None:
    # The receiver's own (wall) clock dates its Retry-After.
    http_date = email.utils.formatdate(time.time() + 2 * 3600, usegmt=True)
    receiver: Receiver = receivers().then(
        Reply(429, headers={"Retry-After": "600"}),  # longer than the 5 s step: wait 600 s
        Reply(503, headers={"Retry-After": "1"}),  # shorter than the 5 min step: the schedule wins
        Reply(503, headers={"Retry-After": http_date}),  # an HTTP date, ~2 h away (step is 30 min)
    )
    await subscribe(api, receiver.url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    delivery = await _delivery(clean_db)
    assert delivery["next_attempt_at"] - delivery["last_attempt_at"] == timedelta(seconds=600)
    clock.advance(599)
    assert await dispatcher.run_once() == 0
    clock.advance(1)
    assert await dispatcher.run_once() == 1
    delivery = await _delivery(clean_db)
    assert delivery["next_attempt_at"] - delivery["last_attempt_at"] == timedelta(seconds=300)
    clock.advance(300)
    await dispatcher.run_once()
    delivery = await _delivery(clean_db)
    wait = (delivery["next_attempt_at"] - delivery["last_attempt_at"]).total_seconds()
    assert 2 * 3600 - 60 < wait <= 2 * 3600, wait
    clock.advance(wait)
    await dispatcher.run_once()
    assert (await _delivery(clean_db))["status"] == "succeeded"
    assert [a["status_code"] for a in await _attempts(clean_db, delivery["id"])] == [429, 503, 503, 200]


async def test_410_disables_the_subscription_at_once_and_says_so(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db, system
) -> None:
    await system.start_worker("webhooks")  # publishes the disabled event and records it in the history
    receiver: Receiver = receivers().then(Reply(410, b"gone"))
    sub = await subscribe(api, receiver.url, event_types=["order.*"])
    first, second = order_created("a"), order_created("b")
    await consume(engine, first)
    await dispatcher.run_once()
    await consume(engine, second)  # no longer active: no delivery

    gone = await _delivery(clean_db, first.id)
    assert gone["status"] == "failed" and gone["run_attempts"] == 1
    assert await _delivery(clean_db, second.id) is None
    read = (await api.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=ERP)).json()
    assert read["active"] is False and read["status"] == "disabled"
    assert read["disabled_reason"] == "endpoint_gone" and read["disabled_at"] is not None

    async def announced():
        return await clean_db.fetchrow(
            "SELECT envelope FROM webhooks.event_history WHERE type = 'webhook_subscription.disabled.v1'"
        )

    from tests.conftest import wait_until

    row = await wait_until(announced, what="the disabled event in the history")
    data = json.loads(row["envelope"])["data"]
    assert data["subscription_id"] == sub["id"] and data["reason"] == "endpoint_gone"
    assert data["last_status_code"] == 410 and data["owner_id"] == "erp-1"

    # Re-enabled by its owner, it receives again.
    enabled = await api.patch(f"/v1/webhook-subscriptions/{sub['id']}", json={"active": True}, headers=ERP)
    assert enabled.json()["status"] == "active" and enabled.json()["disabled_reason"] is None
    third = order_created("c")
    await consume(engine, third)
    await dispatcher.run_once()
    assert (await _delivery(clean_db, third.id))["status"] == "succeeded"


async def test_five_days_of_continuous_failure_disable_the_subscription(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db
) -> None:
    receiver: Receiver = receivers(default=Reply(500))
    sub = await subscribe(api, receiver.url)
    started = clock.now()
    await consume(engine, order_created("a"))
    await dispatcher.run_once()
    days = 0.0
    while days < 5:  # events keep arriving; every attempt fails
        clock.advance(hours=12)
        days += 0.5
        await consume(engine, order_created(f"day-{days}"))
        await dispatcher.run_once()
        read = (await api.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=ERP)).json()
        if days < 5:
            assert read["active"], f"disabled after only {days} days"
    assert read["status"] == "disabled" and read["disabled_reason"] == "failing"
    failing_since = await clean_db.fetchval("SELECT failing_since FROM webhooks.subscriptions")
    assert failing_since == started
    disabled = await clean_db.fetchrow("SELECT envelope FROM webhooks.outbox WHERE event_type LIKE 'webhook_subs%'")
    assert json.loads(disabled["envelope"])["data"]["reason"] == "failing"
    # Its pending retries are parked, not lost.
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE status = 'paused'") > 0
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE status = 'pending'") == 0


async def test_a_success_in_between_resets_the_failure_clock(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db
) -> None:
    receiver: Receiver = receivers(default=Reply(500))
    sub = await subscribe(api, receiver.url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    clock.advance(days=4)
    receiver.then(Reply(200))
    await consume(engine, order_created())
    await dispatcher.run_once()  # the new event succeeds, and the old one's retry (due) fails
    clock.advance(days=2)
    await consume(engine, order_created())
    await dispatcher.run_once()
    read = (await api.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=ERP)).json()
    assert read["active"]


async def test_a_redirect_is_not_followed(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clean_db
) -> None:
    target: Receiver = receivers()
    redirecting: Receiver = receivers(default=Reply(307, headers={"Location": target.url}))
    await subscribe(api, redirecting.url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    assert len(redirecting.requests) == 1 and target.requests == []
    delivery = await _delivery(clean_db)
    [attempt] = await _attempts(clean_db, delivery["id"])
    assert attempt["status_code"] == 307 and attempt["error_class"] == "redirect"
    assert "not followed" in attempt["error"]
    assert delivery["status"] == "pending"  # retried on the schedule like any failure


async def test_a_hanging_receiver_times_out_and_is_retried(
    api: httpx.AsyncClient, receivers, engine, settings: WebhooksSettings, clock: ManualClock, clean_db
) -> None:
    receiver: Receiver = receivers().then(Reply(200, delay=5))
    await subscribe(api, receiver.url)
    await consume(engine, order_created())
    dispatcher = make_dispatcher(settings.model_copy(update={"delivery_timeout_seconds": 0.5}), engine, clock)
    try:
        started = time.monotonic()
        await dispatcher.run_once()
        assert time.monotonic() - started < 3
        delivery = await _delivery(clean_db)
        [attempt] = await _attempts(clean_db, delivery["id"])
        assert attempt["error_class"] == "timeout" and attempt["status_code"] is None
        assert 400 <= attempt["latency_ms"] < 2500
        assert delivery["status"] == "pending"
        clock.advance(5)
        await dispatcher.run_once()
        assert (await _delivery(clean_db))["status"] == "succeeded"
    finally:
        await dispatcher.shutdown()


async def test_a_slow_endpoint_never_delays_a_healthy_one(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clean_db
) -> None:
    slow: Receiver = receivers(default=Reply(200, delay=2.5))
    healthy: Receiver = receivers()
    await subscribe(api, slow.url, event_types=["order.*"])
    await subscribe(api, healthy.url, event_types=["order.*"])
    stopping = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stopping))
    try:
        # A backlog for the slow endpoint first, then events both subscriptions want.
        for i in range(30):
            await consume(engine, order_created(f"backlog-{i}"))
        await settle(lambda: len(slow.requests) >= 8)
        started = time.monotonic()
        for i in range(10):
            await consume(engine, order_created(f"fresh-{i}"))
        await settle(lambda: len(healthy.requests) == 40, timeout=5)
        healthy_took = time.monotonic() - started
        assert healthy_took < 2.0, f"the healthy endpoint waited {healthy_took:.1f}s behind the slow one"
        assert len(slow.requests) < 40  # the slow one is still working through its backlog
    finally:
        stopping.set()
        await asyncio.wait_for(running, timeout=30)
    assert (
        await clean_db.fetchval(
            "SELECT count(*) FROM webhooks.delivery_attempts a JOIN webhooks.deliveries d ON d.id = a.delivery_id"
            " WHERE a.url = $1 AND a.latency_ms > 2000",
            healthy.url,
        )
        == 0
    )


async def test_a_rotated_secret_signs_twice_during_the_overlap(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    receiver: Receiver = receivers()
    sub = await subscribe(api, receiver.url)
    rotated = await api.post(
        f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": 3600}, headers=ERP
    )
    old, new = sub["secret"], rotated.json()["secret"]
    await consume(engine, order_created())
    await dispatcher.run_once()
    during = receiver.requests[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)

    clock.advance(3601)
    await consume(engine, order_created())
    await dispatcher.run_once()
    after = receiver.requests[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "localhost", "[::ffff:127.0.0.1]"]
)
async def test_the_address_is_checked_again_at_connect_time(
    api: httpx.AsyncClient,
    receivers,
    engine,
    settings: WebhooksSettings,
    clock: ManualClock,
    clean_db,
    host: str,
) -> None:
    """Registered while allow-listed; the operator then removes the allow-list: nothing is sent."""
    receiver: Receiver = receivers()
    await subscribe(api, f"http://{host}:{receiver.port}/hooks")
    await consume(engine, order_created())
    dispatcher = make_dispatcher(strict(settings), engine, clock)
    try:
        await dispatcher.run_once()
    finally:
        await dispatcher.shutdown()
    assert receiver.requests == []
    delivery = await _delivery(clean_db)
    [attempt] = await _attempts(clean_db, delivery["id"])
    assert attempt["error_class"] == "blocked_address", attempt["error"]
    assert "not a public address (loopback)" in attempt["error"]
    assert delivery["status"] == "pending"


async def test_http_refused_at_send_time_when_no_longer_allowed(
    api: httpx.AsyncClient, receivers, engine, settings: WebhooksSettings, clock: ManualClock, clean_db
) -> None:
    receiver: Receiver = receivers()
    await subscribe(api, receiver.url)
    await consume(engine, order_created())
    dispatcher = make_dispatcher(settings.model_copy(update={"allow_http": False}), engine, clock)
    try:
        await dispatcher.run_once()
    finally:
        await dispatcher.shutdown()
    assert receiver.requests == []
    [attempt] = await _attempts(clean_db, (await _delivery(clean_db))["id"])
    assert attempt["error_class"] == "insecure_url"


async def test_the_response_body_is_kept_to_2kb_and_connection_errors_are_classified(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, clean_db
) -> None:
    big: Receiver = receivers(default=Reply(500, b"\x00x" * 5000))
    await subscribe(api, big.url)
    dead: Receiver = receivers()
    dead_url = dead.url
    dead.close()  # nobody listens there any more
    await subscribe(api, dead_url)
    await consume(engine, order_created())
    await dispatcher.run_once()
    rows = await clean_db.fetch(
        "SELECT a.* FROM webhooks.delivery_attempts a JOIN webhooks.deliveries d ON d.id = a.delivery_id"
    )
    by_url = {r["url"]: r for r in rows}
    assert len(by_url[big.url]["response_body"]) == 2048 and "\x00" not in by_url[big.url]["response_body"]
    assert by_url[dead_url]["error_class"] == "connect" and by_url[dead_url]["status_code"] is None


async def test_the_envelopes_traceparent_goes_out_as_a_header(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher
) -> None:
    receiver: Receiver = receivers()
    sub = await subscribe(api, receiver.url, event_types=["order.*"])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = order_created("traced").model_copy(update={"traceparent": traceparent})
    untraced = order_created("untraced")
    await consume(engine, traced, untraced)
    assert await dispatcher.run_once() == 2
    by_event = {json.loads(r.body)["id"]: r for r in receiver.requests}
    sent = by_event[str(traced.id)].headers["traceparent"]  # a span of its own in the event's trace
    assert sent.split("-")[1] == traceparent.split("-")[1] and sent != traceparent
    assert "traceparent" not in by_event[str(untraced.id)].headers
    for request in receiver.requests:
        Webhook(sub["secret"]).verify(request.body, request.headers)
