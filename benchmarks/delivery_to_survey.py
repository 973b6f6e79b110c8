"""Benchmark 5: order delivered → survey listed through the service desk API.

Real processes, as ``make run`` starts them: the orders worker (its outbox relay publishes the
events), the service desk worker (its ``service_desk.order_delivered`` consumer registers the
warranties and creates the survey, in one transaction with the inbox row) and the service desk
API (uvicorn, one worker). The driver commits ``order.delivered.v1`` events at a steady rate
through a real unit of work into the orders outbox (as the orders service does when a delivery
is confirmed: the event alone, no order row) and, for each, polls
``GET /v1/surveys?order_id=…`` with a support lead's bearer token until the survey is listed
(through a few keep-alive connections: see :mod:`benchmarks.http11`).

The figure is from the moment the event's commit returned to the moment the poll that first
listed the survey returned: an upper bound, coarse by up to one poll interval. Baseline, beside
it: one bare aio-pika hop (publish with confirms → consume) at the same rate. The other
consumers bound to ``order.delivered`` (webhooks) are not running: their queues receive their
copies and are deleted at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from benchmarks.common import Report, Server, paced
from benchmarks.contract_to_order import _wait_for_consumer, report_against_bare_hop
from benchmarks.cpu import CpuMeter
from benchmarks.http11 import Http11Pool

RATE = 50.0
POLL_INTERVAL = 0.01
FIRST_POLL_AFTER = 0.005
TIMEOUT = 30.0


async def run(quick: bool) -> Report:
    from services.orders.config import get_settings as orders_settings
    from services.orders.db import platform_tables
    from services.service_desk.config import get_settings as service_desk_settings
    from shared.auth import mint_token
    from shared.db import create_engine
    from shared.events import ContactInfo, OrderDelivered
    from shared.events.catalog import DeliveredItem
    from shared.service import Runtime

    warmup, window = (1.0, 5.0) if quick else (3.0, 20.0)
    report = Report(
        "5. Order delivered → survey listed through the service desk API",
        f"commit order.delivered into the orders outbox at {RATE:g}/s for {window:g} s (after {warmup:g} s "
        f"warm-up); orders worker (relay), service desk worker and service desk API (uvicorn, 1 worker) as "
        f"real processes; poll every {POLL_INTERVAL * 1000:g} ms. Baseline: one bare aio-pika hop "
        f"(confirms → consume) at {RATE:g}/s.",
    )
    settings = orders_settings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    token = mint_token(settings, sub="bench-lead", roles=["support_lead"])
    sequence = iter(range(1, 10**6))

    async def deliver() -> uuid.UUID:
        """One order.delivered event, committed through the orders unit of work; its order id."""
        n = next(sequence)
        order_id = uuid.uuid4()
        event = OrderDelivered(
            order_id=order_id,
            order_number=f"SO-2026-{n:06d}",
            contract_id=uuid.uuid4(),
            customer_id=f"bench-{n}",
            customer_name="Bench Customer Ltd.",
            contact=ContactInfo(name="Han Meimei", email="han@example.com"),
            owner_id="bench-rep",
            items=(
                DeliveredItem(
                    line_no=1,
                    sku="PUMP-1",
                    description="Pump",
                    quantity=Decimal(2),
                    serial_numbers=(f"SN-{n}-1", f"SN-{n}-2"),
                    warranty_months=24,
                ),
                DeliveredItem(line_no=2, sku="SVC-1", description="Install", quantity=Decimal(1)),
            ),
            delivered_at=datetime.now(UTC),
        )
        uow = runtime.uow()
        async with uow:
            uow.emit(event, subject=str(order_id))
            await uow.commit()
        return order_id

    servers = [
        Server("orders-worker", [sys.executable, "-m", "services.orders.worker"]),
        Server("service-desk-worker", [sys.executable, "-m", "services.service_desk.worker"]),
        Server.uvicorn("service-desk-api", "services.service_desk.main:create_app", workers=1),
    ]
    try:
        for server in servers:
            await server.start()
        await _wait_for_consumer(service_desk_settings().queue_name("service_desk.order_delivered"))
        pool = Http11Pool("127.0.0.1", servers[2].port, size=8)
        auth = {"Authorization": f"Bearer {token}"}
        try:

            async def deliver_and_watch() -> float:
                order_id = await deliver()
                delivered = time.monotonic()
                await asyncio.sleep(FIRST_POLL_AFTER)
                while True:
                    status, body = await pool.get(f"/v1/surveys?order_id={order_id}", auth)
                    if status != 200:
                        raise RuntimeError(f"GET /v1/surveys answered {status}: {body[:300]!r}")
                    if json.loads(body)["items"]:
                        return time.monotonic() - delivered
                    if time.monotonic() - delivered > TIMEOUT:
                        raise RuntimeError(f"the survey of order {order_id} did not appear in {TIMEOUT:g}s")
                    await asyncio.sleep(POLL_INTERVAL)

            # The first delivery primes the whole path (connections, prepared statements).
            primed = await deliver_and_watch()
            latencies: list[float | None] = [None] * int(RATE * (warmup + window))

            async def fire(k: int) -> None:
                latencies[k] = await deliver_and_watch()

            meter = CpuMeter({"driver (this process)": os.getpid(), **{server.name: server.pid for server in servers}})
            meter.start()
            await paced(RATE, warmup + window, fire)
            cores = meter.stop()
        finally:
            pool.close()
        for server in servers:
            server.check_alive()
    finally:
        for server in reversed(servers):
            await server.stop()
        await runtime.engine.dispose()

    return await report_against_bare_hop(
        report,
        "delivered → survey listed",
        "deliveries",
        latencies,
        rate=RATE,
        poll_interval=POLL_INTERVAL,
        primed=primed,
        warmup=warmup,
        window=window,
        cores=cores,
    )
