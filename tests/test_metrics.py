"""Prometheus metrics of workers and APIs, read the way Prometheus reads them (the exposition
text), from a real worker process and from the backlog sampler against the real database and
broker: the series exist and move."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.contracts.db import platform_tables as contract_tables
from services.orders.consumers import SUBSCRIPTIONS as ORDER_SUBSCRIPTIONS
from services.orders.db import platform_tables as order_tables
from services.service_desk.db import platform_tables as service_desk_tables
from services.webhooks.db import platform_tables as webhook_tables
from services.webhooks.worker import GAUGES as WEBHOOK_GAUGES
from shared.backlog import BacklogSampler
from shared.bus import connect
from shared.db import create_engine
from shared.events import CloudEvent
from shared.timers import schedule_timer
from shared.uow import UnitOfWork
from tests.conftest import System, auth, settings_for, spawn, wait_until
from tests.helpers import count, sign_contracts
from tests.test_docs_offline import free_port
from tests.test_pipeline import publish_raw

Samples = list[tuple[str, dict[str, str], float]]


def samples(exposition: str) -> Samples:
    """Every sample of an exposition text, parsed by prometheus_client's own parser."""
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(exposition) for s in f.samples]


def value(exposition: Samples, name: str, **labels: str) -> float | None:
    """The sum of the ``name`` samples whose labels include ``labels`` (None if there are none)."""
    found = [v for n, have, v in exposition if n == name and labels.items() <= have.items()]
    return sum(found) if found else None


def local() -> Samples:
    return samples(generate_latest(REGISTRY).decode())


async def test_backlog_gauges_follow_the_outbox_timers_and_queues(system: System, clean_db: asyncpg.Connection) -> None:
    contracts, orders, desk = settings_for("contracts"), settings_for("orders"), settings_for("service_desk")
    engines = [create_engine(s) for s in (contracts, orders, desk)]
    try:
        samplers = {
            "contracts": BacklogSampler(contracts, engines[0], contract_tables),
            "orders": BacklogSampler(orders, engines[1], order_tables, ORDER_SUBSCRIPTIONS),
            "service_desk": BacklogSampler(desk, engines[2], service_desk_tables),
        }
        # Three contracts signed while no relay runs: their events wait in the contracts outbox.
        await sign_contracts(3)
        await asyncio.sleep(0.2)
        await samplers["contracts"].sample_database()
        waiting = await count(clean_db, "SELECT count(*) FROM contracts.outbox WHERE sent_at IS NULL")
        assert waiting >= 6  # drafted and signed at least, for each
        assert value(local(), "salesline_outbox_backlog", service="contracts") == waiting
        assert value(local(), "salesline_outbox_oldest_unsent_seconds", service="contracts") >= 0.2

        # A timer due a minute ago and not fired (no service desk worker runs).
        uow = UnitOfWork(engines[2], service_desk_tables, desk.source)
        async with uow:
            await schedule_timer(uow, "survey.reminder", key="x", due_at=datetime.now(UTC) - timedelta(minutes=1))
            await uow.commit()
        await samplers["service_desk"].sample_database()
        assert value(local(), "salesline_timers_due", service="service_desk") == 1
        assert value(local(), "salesline_timers_oldest_due_seconds", service="service_desk") >= 60

        # The contracts relay publishes; nobody consumes orders' queue yet: its depth is the lag.
        await system.start_worker("contracts")
        await wait_until(lambda: _unsent(clean_db, "contracts", 0), what="the contracts outbox sent")
        connection = await _connect(orders)
        try:
            await samplers["orders"].sample_queues(connection)
            assert value(local(), "salesline_consumer_queue_depth", consumer="orders.contract_signed") == 3
            assert value(local(), "salesline_dead_letters", consumer="orders.contract_signed") == 0
            await samplers["contracts"].sample_database()
            assert value(local(), "salesline_outbox_backlog", service="contracts") == 0
            assert value(local(), "salesline_outbox_oldest_unsent_seconds", service="contracts") == 0

            # The orders worker drains the queue.
            await system.start_worker("orders")
            await wait_until(lambda: _orders(clean_db, 3), what="three orders")
            await asyncio.sleep(0.3)
            await samplers["orders"].sample_queues(connection)
            assert value(local(), "salesline_consumer_queue_depth", consumer="orders.contract_signed") == 0
        finally:
            await connection.close()

        # The webhooks worker's own gauges go through the same sampler.
        webhooks = settings_for("webhooks")
        engines.append(create_engine(webhooks))
        await BacklogSampler(webhooks, engines[-1], webhook_tables, extra=WEBHOOK_GAUGES).sample_database()
        assert value(local(), "salesline_webhook_deliveries_pending") == 0
        assert value(local(), "salesline_webhook_subscriptions_disabled") == 0
        assert value(local(), "salesline_webhook_subscriptions_failing") == 0
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_worker_process_serves_its_metrics(system: System, clean_db: asyncpg.Connection) -> None:
    """The orders worker as a real process: consumption, publication by type, dead letters and
    the sampled gauges, scraped over HTTP as Prometheus does."""
    await system.start_worker("contracts")
    await sign_contracts(4)
    await wait_until(lambda: _unsent(clean_db, "contracts", 0), what="the contracts outbox sent")
    # An event no consumer can read goes to the orders consumer's dead-letter queue.
    signed = await clean_db.fetchval("SELECT envelope FROM contracts.outbox WHERE event_type = 'contract.signed.v1'")
    broken = CloudEvent.model_validate_json(signed).model_copy(update={"data": {"contract_id": "not a uuid"}})
    await publish_raw(broken.model_copy(update={"id": uuid.uuid4()}))

    port = free_port()
    worker = spawn(
        "services.orders.worker",
        log_name="metrics-orders-worker",
        SALESLINE_WORKER_METRICS_PORT=str(port),
        SALESLINE_METRICS_SAMPLE_SECONDS="0.2",
    )
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            expected = [
                ("salesline_events_consumed_total", {"consumer": "orders.contract_signed"}, 4),
                ("salesline_outbox_published_total", {"type": "order.created.v1"}, 4),
                ("salesline_events_dead_lettered_total", {"consumer": "orders.contract_signed"}, 1),
                ("salesline_dead_letters", {"consumer": "orders.contract_signed"}, 1),
                ("salesline_consumer_queue_depth", {"consumer": "orders.contract_signed"}, 0),
                ("salesline_outbox_backlog", {"service": "orders"}, 0),
            ]

            async def scraped() -> Samples | None:
                try:
                    got = samples((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
                except httpx.TransportError:
                    return None
                return got if all(value(got, name, **labels) == v for name, labels, v in expected) else None

            got = await wait_until(scraped, timeout=30, interval=0.3, what=f"the orders worker's metrics: {expected}")
            assert value(got, "salesline_timers_due", service="orders") == 0
            assert value(got, "salesline_outbox_oldest_unsent_seconds", service="orders") == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    assert await count(clean_db, "SELECT count(*) FROM orders.orders") == 4


async def test_api_request_latency_by_route(system: System) -> None:
    orders = await system.client("orders")
    before = value(local(), "http_request_duration_seconds_count", route="/v1/orders/{order_id}") or 0
    for _ in range(3):
        response = await orders.get(
            "/v1/orders/00000000-0000-0000-0000-000000000000", headers=auth("rep-1", "sales_rep")
        )
        assert response.status_code == 404
    scraped = samples((await orders.get("/metrics")).text)
    assert value(scraped, "http_request_duration_seconds_count", route="/v1/orders/{order_id}") == before + 3
    assert value(scraped, "http_requests_total", route="/v1/orders/{order_id}", status="404") >= 3


async def _unsent(db: asyncpg.Connection, schema: str, expected: int) -> bool:
    return await count(db, f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL") == expected


async def _orders(db: asyncpg.Connection, expected: int) -> bool:
    return await count(db, "SELECT count(*) FROM orders.orders") == expected


async def _connect(settings):
    return await connect(settings, name="test-metrics")
