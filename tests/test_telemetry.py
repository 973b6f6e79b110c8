"""OpenTelemetry export through the real parts: an OTLP/HTTP collector on 127.0.0.1 (a plain
HTTP receiver, each body decoded as an ``ExportTraceServiceRequest``), the services' apps and
workers with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at it, the real broker in between.

The spans of one request across processes share its trace id and chain parent to child, and
they are the very ids the events' ``traceparent`` and the webhook header carry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.orders.db import platform_tables as orders_tables
from shared import telemetry
from shared.context import EventContext, current_context
from shared.db import create_engine
from shared.events.catalog import OrderCancelled
from shared.http import create_service_app
from shared.uow import UnitOfWork
from tests.conftest import ROOT, System, settings_for, spawn, wait_until
from tests.shared.conftest import build_context_router, http_settings
from tests.test_trace_context import (
    CALLER_SPAN,
    TRACE,
    _received,
    a_traced_delivery,
    fire_a_timer_scheduled_in_the_trace,
    parts,
)
from tests.webhooks.receivers import Receiver, Reply

INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5  # opentelemetry.proto.trace.v1.Span.SpanKind


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    links: tuple[str, ...]  # linked span ids
    attributes: dict


def exported_spans(collector: Receiver) -> list[ExportedSpan]:
    spans = []
    for request in list(collector.requests):
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in export.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {}
                    for a in span.attributes:
                        kind = a.value.WhichOneof("value")
                        attributes[a.key] = getattr(a.value, kind)
                    spans.append(
                        ExportedSpan(
                            service=resource["service.name"],
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            links=tuple(link.span_id.hex() for link in span.links),
                            attributes=attributes,
                        )
                    )
    return spans


@pytest.fixture
async def collector(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    """An OTLP/HTTP endpoint, and the environment that makes every process export to it."""
    receiver = Receiver(Reply(body=b"", headers={"Content-Type": "application/x-protobuf"}))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    telemetry.shutdown()
    try:
        yield receiver
    finally:
        telemetry.shutdown()  # the next tests run without export
        receiver.close()


def one(spans: list[ExportedSpan], **match: object) -> ExportedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


async def test_the_spans_of_one_request_follow_it_across_services(
    system: System, clean_db: asyncpg.Connection, collector: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with a_traced_delivery(system, clean_db, monkeypatch) as receiver:
        await wait_until(lambda: _received(receiver), what="the survey.sent webhook")

        def in_trace() -> list[ExportedSpan]:
            return [s for s in exported_spans(collector) if s.trace_id == TRACE]

        async def all_exported() -> bool:
            return {(s.service, s.kind) for s in in_trace()} >= {
                ("salesline-orders", SERVER),
                ("salesline-orders-worker", PRODUCER),
                ("salesline-service_desk-worker", CONSUMER),
                ("salesline-service_desk-worker", PRODUCER),
                ("salesline-webhooks-worker", CONSUMER),
                ("salesline-webhooks-worker", CLIENT),
            }

        await wait_until(all_exported, what="the spans of the request's trace")
        spans = in_trace()

        # The request: a server span named by its route, child of the caller's span.
        server = one(spans, service="salesline-orders", kind=SERVER)
        assert server.name == "POST /v1/orders/{order_id}/deliver" and server.parent_span_id == CALLER_SPAN
        assert server.attributes["http.route"] == "/v1/orders/{order_id}/deliver"
        assert server.attributes["http.response.status_code"] == 200
        # Its event carries the server span: logs, events and spans name the same ids.
        delivered_event = json.loads(
            await clean_db.fetchval("SELECT envelope FROM orders.outbox WHERE event_type = 'order.delivered.v1'")
        )
        assert parts(delivered_event["traceparent"]) == (TRACE, server.span_id, "01")

        # The relay's publish and the service desk's handling are both children of the request;
        # the handling links to the publish (the message's header).
        publish = one(spans, service="salesline-orders-worker", name="publish order.delivered.v1")
        assert publish.kind == PRODUCER and publish.parent_span_id == server.span_id
        assert publish.attributes["messaging.message.id"] == delivered_event["id"]
        handling = one(spans, service="salesline-service_desk-worker", name="process order.delivered.v1")
        assert handling.kind == CONSUMER and handling.parent_span_id == server.span_id
        assert handling.links == (publish.span_id,)

        # What the handling records (survey.sent) has the consumer span as parent, through the
        # service desk's relay into the webhooks worker's consumer.
        survey_sent = json.loads(
            await clean_db.fetchval("SELECT envelope FROM service_desk.outbox WHERE event_type = 'survey.sent.v1'")
        )
        assert parts(survey_sent["traceparent"])[:2] == (TRACE, handling.span_id)
        republish = one(spans, service="salesline-service_desk-worker", name="publish survey.sent.v1")
        assert republish.parent_span_id == handling.span_id
        history = one(spans, service="salesline-webhooks-worker", name="process survey.sent.v1")
        assert history.parent_span_id == handling.span_id and history.links == (republish.span_id,)

        # The webhook request: a client span in the event's trace, sent as the receiver's parent.
        webhook = one(spans, service="salesline-webhooks-worker", kind=CLIENT)
        assert webhook.name == "POST" and webhook.parent_span_id == handling.span_id
        assert webhook.attributes["http.response.status_code"] == 200
        assert webhook.attributes["server.address"] == "127.0.0.1"
        assert "url.full" not in webhook.attributes  # a subscriber's path may hold a token
        assert receiver.requests[0].headers["traceparent"] == f"00-{TRACE}-{webhook.span_id}-01"


async def _probe(client: httpx.AsyncClient, traceparent: str | None) -> str:
    response = await client.get("/v1/probe/context", headers={"traceparent": traceparent} if traceparent else {})
    assert response.status_code == 200
    return response.json()["traceparent"]


def _probe_app() -> httpx.AsyncClient:
    app = create_service_app(http_settings(), title="probe", routers=[build_context_router()], configure_logs=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe.test")


async def test_requests_follow_the_sampler_of_the_environment(
    collector: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default sampler (parent-based, always on): a caller's sampled trace is exported, an
    # unsampled one is not, and either way the request's traceparent is its server span's.
    async with _probe_app() as client:
        sampled = await _probe(client, f"00-{TRACE}-{CALLER_SPAN}-01")
        unsampled = await _probe(client, f"00-{'1' * 32}-{CALLER_SPAN}-00")
        started = await _probe(client, None)
    telemetry.force_flush()
    spans = exported_spans(collector)
    assert {s.trace_id for s in spans} == {TRACE, parts(started)[0]}
    server = one(spans, trace_id=TRACE)
    assert (server.service, server.name, server.kind) == ("salesline-test_http", "GET /v1/probe/context", SERVER)
    assert sampled == f"00-{TRACE}-{server.span_id}-01"
    assert parts(unsampled)[0] == "1" * 32 and parts(unsampled)[2] == "00"
    assert one(spans, trace_id=parts(started)[0]).span_id == parts(started)[1]

    # OTEL_TRACES_SAMPLER=always_off: nothing is exported, and the context says "not sampled".
    telemetry.shutdown()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    collector.requests.clear()
    async with _probe_app() as client:
        dropped = await _probe(client, f"00-{TRACE}-{CALLER_SPAN}-01")
    telemetry.force_flush()
    assert parts(dropped)[0] == TRACE and parts(dropped)[2] == "00"
    assert exported_spans(collector) == []


async def test_a_timer_firing_is_a_span_of_the_trace_that_scheduled_it(
    clean_db: asyncpg.Connection, collector: Receiver
) -> None:
    seen = await fire_a_timer_scheduled_in_the_trace()
    telemetry.force_flush()
    fired = one(exported_spans(collector), name="timer test.traced")
    assert (fired.service, fired.kind, fired.trace_id) == ("salesline-service_desk-worker", INTERNAL, TRACE)
    assert fired.parent_span_id == CALLER_SPAN
    assert seen["traceparent"] == f"00-{TRACE}-{fired.span_id}-01"  # what it records has the firing as parent


async def test_a_worker_process_exports_its_spans_by_the_time_it_stops(
    clean_db: asyncpg.Connection, bus: str, collector: Receiver
) -> None:
    # The real entry point (python -m services.orders.worker), batching for a minute: what it
    # exported arrived when SIGTERM made it flush on the way out.
    worker = spawn("services.orders.worker", log_name="telemetry-orders-worker", OTEL_BSP_SCHEDULE_DELAY="60000")
    try:
        engine = create_engine(settings_for("orders"))
        token = current_context.set(EventContext(traceparent=f"00-{TRACE}-{CALLER_SPAN}-01"))
        try:
            uow = UnitOfWork(engine, orders_tables, "/salesline/orders")
            async with uow:
                event = uow.emit(_cancelled(), subject="order-1")
                await uow.commit()
        finally:
            current_context.reset(token)
            await engine.dispose()
        sent = "SELECT sent_at IS NOT NULL FROM orders.outbox WHERE event_id = $1"
        await wait_until(lambda: clean_db.fetchval(sent, event.id), timeout=30, what="the relay's publish")
        assert exported_spans(collector) == []  # still batched
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 20) == 0
    publish = one(exported_spans(collector), name="publish order.cancelled.v1")
    assert (publish.service, publish.trace_id, publish.parent_span_id) == (
        "salesline-orders-worker",
        TRACE,
        CALLER_SPAN,
    )


def _cancelled() -> OrderCancelled:
    return OrderCancelled(
        order_id=uuid.uuid4(),
        order_number="SO-1",
        customer_id="cust-1",
        owner_id="rep-1",
        reason="test",
        cancelled_by="rep-1",
        cancelled_at=datetime.now(UTC),
    )


def _loads_the_sdk(**env: str) -> bool:
    """Whether an API process and a worker's parts, built in a fresh interpreter, load the SDK."""
    code = (
        "import sys\n"
        "from services.orders.main import create_app\n"
        "from services.orders.config import get_settings\n"
        "from shared import telemetry\n"
        "create_app()\n"
        "tracer = telemetry.tracer(get_settings().service_name, worker=True)\n"
        "print('opentelemetry.sdk.trace' in sys.modules, tracer is not None)\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out[0] == out[1], out  # the SDK is loaded exactly when there is a tracer
    return out[0] == "True"


def test_without_an_endpoint_the_sdk_is_never_loaded() -> None:
    assert not _loads_the_sdk()
    assert _loads_the_sdk(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert _loads_the_sdk(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:9/v1/traces")
    assert not _loads_the_sdk(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SDK_DISABLED="true")
