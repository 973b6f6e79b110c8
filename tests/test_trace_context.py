"""W3C trace context end to end through the real broker: an HTTP request's ``traceparent`` →
the event its handler records (outbox) → RabbitMQ → the consumer (its log lines, and the events
it records, as their parent) → the webhook request's ``traceparent`` header."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.service_desk.db import platform_tables as service_desk_tables
from services.webhooks.worker import run_webhooks_worker
from shared.context import EventContext, current_context, install_log_record_context
from shared.db import create_engine
from shared.timers import TimerPoller, schedule_timer
from shared.uow import UnitOfWork
from tests.conftest import System, auth, clear_settings_caches, settings_for, wait_until
from tests.helpers import count, sign_contracts
from tests.orders.helpers import approve_with_handlers
from tests.webhooks.receivers import Receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parts(traceparent: str | None) -> tuple[str, str, str]:
    assert traceparent is not None
    match = TRACEPARENT_RE.fullmatch(traceparent)
    assert match, traceparent
    return match[1], match[2], match[3]


@contextlib.asynccontextmanager
async def a_traced_delivery(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Receiver]:
    """A signed contract's order delivered over HTTP in the caller's trace ``TRACE``, with the
    workers of orders, the service desk and webhooks (its dispatcher too) running and a webhook
    subscription to ``survey.sent.v1`` at the receiver this yields."""
    monkeypatch.setenv("SALESLINE_WEBHOOKS_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("SALESLINE_WEBHOOKS_ALLOW_HTTP", "true")
    monkeypatch.setenv("SALESLINE_WEBHOOKS_DISPATCHER_POLL_SECONDS", "0.1")
    clear_settings_caches()
    receiver = Receiver()
    stopping = asyncio.Event()
    # The webhooks worker with its dispatcher (System runs the shared worker part only).
    webhooks_worker = asyncio.create_task(run_webhooks_worker(settings_for("webhooks"), stopping))
    try:
        for service in ("contracts", "orders", "service_desk"):
            await system.start_worker(service)
        webhooks = await system.client("webhooks")
        created = await webhooks.post(
            "/v1/webhook-subscriptions",
            json={"url": receiver.url, "event_types": ["survey.sent.v1"]},
            headers=auth("erp-1", "integration"),
        )
        assert created.status_code == 201, created.text

        await sign_contracts(1)
        await wait_until(lambda: _exists(clean_db, "SELECT count(*) FROM orders.orders"), what="the order")
        order_id = await clean_db.fetchval("SELECT id FROM orders.orders")
        await approve_with_handlers(order_id)

        orders = await system.client("orders")
        delivered = await orders.post(
            f"/v1/orders/{order_id}/deliver",
            json={"lines": [{"line_no": 1, "serial_numbers": ["SN-1"]}]},
            headers={**auth("manager-1", "sales_manager"), "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
        )
        assert delivered.status_code == 200, delivered.text
        yield receiver
    finally:
        stopping.set()
        await asyncio.wait_for(webhooks_worker, timeout=20)
        receiver.close()


async def test_one_trace_from_the_request_to_the_webhook(
    system: System, clean_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_record_context()
    caplog.set_level(logging.DEBUG, logger="salesline.inbox")
    async with a_traced_delivery(system, clean_db, monkeypatch) as receiver:
        # The request's event: the caller's trace, the request's own span, the caller's flags.
        delivered_event = json.loads(
            await clean_db.fetchval("SELECT envelope FROM orders.outbox WHERE event_type = 'order.delivered.v1'")
        )
        trace, request_span, flags = parts(delivered_event["traceparent"])
        assert (trace, flags) == (TRACE, "01") and request_span != CALLER_SPAN

        # Through the broker into the service desk consumer: the survey it sends is in the same
        # trace, its parent the consumer's span (not the request's), caused by order.delivered.
        sent_sql = "SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.sent.v1'"
        await wait_until(lambda: clean_db.fetchval(sent_sql), what="survey.sent")
        survey_sent = json.loads(await clean_db.fetchval(sent_sql))
        trace, consumer_span, _ = parts(survey_sent["traceparent"])
        assert trace == TRACE and consumer_span not in (request_span, CALLER_SPAN)
        assert survey_sent["causationid"] == delivered_event["id"]

        # The consumer's log line names the trace.
        handled = [r for r in caplog.records if "handled order.delivered.v1" in r.getMessage()]
        assert handled and {r.trace_id for r in handled} == {TRACE}

        # The webhook for survey.sent carries the trace to the receiver, in a span of its own.
        await wait_until(lambda: _received(receiver), what="the survey.sent webhook")
        request = receiver.requests[0]
        assert json.loads(request.body)["id"] == survey_sent["id"]
        trace, webhook_span, _ = parts(request.headers.get("traceparent"))
        assert trace == TRACE and webhook_span not in (consumer_span, request_span)


async def test_a_request_without_trace_context_starts_a_trace(system: System, clean_db: asyncpg.Connection) -> None:
    await system.start_worker("orders")
    await system.start_worker("contracts")
    await sign_contracts(1)
    await wait_until(lambda: _exists(clean_db, "SELECT count(*) FROM orders.orders"), what="the order")
    drafted, signed, created = [
        json.loads(await clean_db.fetchval(f"SELECT envelope FROM {schema}.outbox WHERE event_type = $1", event_type))[
            "traceparent"
        ]
        for schema, event_type in (
            ("contracts", "contract.drafted.v1"),
            ("contracts", "contract.signed.v1"),
            ("orders", "order.created.v1"),
        )
    ]
    # Two commands, two traces (no request around them: each unit of work's events share none),
    # and the order created by the consumer joins the signing's trace.
    assert parts(created)[0] == parts(signed)[0]
    assert parts(drafted)[0] != parts(signed)[0]


async def _exists(db: asyncpg.Connection, sql: str) -> bool:
    return await count(db, sql) > 0


async def _received(receiver: Receiver) -> bool:
    return bool(receiver.requests)


async def fire_a_timer_scheduled_in_the_trace() -> dict:
    """Schedule a service desk timer in the caller's trace ``TRACE``, fire it with the real poller;
    what its handler saw (its payload and trace context)."""
    settings = settings_for("service_desk")
    engine = create_engine(settings)
    seen: dict = {}

    async def handler(payload: dict, uow: UnitOfWork) -> None:
        seen.update(payload=payload, traceparent=current_context.get().traceparent)

    try:
        token = current_context.set(EventContext(traceparent=f"00-{TRACE}-{CALLER_SPAN}-01"))
        try:
            uow = UnitOfWork(engine, service_desk_tables, settings.source)
            async with uow:
                due = datetime.now(UTC) - timedelta(seconds=1)
                await schedule_timer(uow, "test.traced", key="k", due_at=due, payload={"a": 1})
                await uow.commit()
        finally:
            current_context.reset(token)
        poller = TimerPoller(settings, {"test.traced": handler}, lambda: UnitOfWork(engine, service_desk_tables, ""))
        assert await poller.fire_due() == 1
    finally:
        await engine.dispose()
    return seen


async def test_a_timer_fires_in_the_trace_that_scheduled_it(clean_db: asyncpg.Connection) -> None:
    seen = await fire_a_timer_scheduled_in_the_trace()
    assert seen["payload"] == {"a": 1, "_key": "k"}  # the handler never sees the trace key
    trace, span, _ = parts(seen["traceparent"])
    assert trace == TRACE and span != CALLER_SPAN
