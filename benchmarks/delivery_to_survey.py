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

import sys
import time
import uuid
from datetime import UTC, datetime

from benchmarks.common import (
    BENCH_REP,
    GOODS,
    POLLED_AGAINST_HOP,
    RATE,
    Report,
    Server,
    commit_events,
    contact,
    latency_window,
    paced_latencies,
    report_against_bare_hop,
    running,
    seconds_until_listed,
    service_runtime,
)


async def run(quick: bool) -> Report:
    from services.service_desk.config import get_settings as service_desk_settings
    from shared.auth import mint_token
    from shared.events import DeliveredItem, OrderDelivered

    warmup, window = latency_window(quick)
    report = Report(
        "5. Order delivered → survey listed through the service desk API",
        f"commit order.delivered into the orders outbox at {RATE:g}/s for {window:g} s (after {warmup:g} s "
        f"warm-up); orders worker (relay), service desk worker and service desk API (uvicorn, 1 worker) as "
        f"real processes; {POLLED_AGAINST_HOP}.",
    )
    runtime = service_runtime("orders")
    token = mint_token(runtime.settings, sub="bench-lead", roles=["support_lead"])
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
            contact=contact(),
            owner_id=BENCH_REP,
            items=tuple(
                DeliveredItem(
                    line_no=line_no,
                    sku=goods.sku,
                    description=goods.description,
                    quantity=goods.quantity,
                    serial_numbers=tuple(f"SN-{n}-{line_no}-{i}" for i in range(int(goods.quantity)))
                    if goods.warranty_months
                    else (),
                    warranty_months=goods.warranty_months,
                )
                for line_no, goods in enumerate(GOODS, start=1)
            ),
            delivered_at=datetime.now(UTC),
        )
        await commit_events(runtime, [(event, str(order_id))])
        return order_id

    servers = [
        Server("orders-worker", [sys.executable, "-m", "services.orders.worker"]),
        Server("service-desk-worker", [sys.executable, "-m", "services.service_desk.worker"]),
        Server.uvicorn("service-desk-api", "services.service_desk.main:create_app", workers=1),
    ]

    async def deliver_and_watch(pool, auth: dict[str, str]) -> float:
        order_id = await deliver()
        return await seconds_until_listed(pool, f"/v1/surveys?order_id={order_id}", auth, time.monotonic())

    try:
        async with running(servers, service_desk_settings().queue_name("service_desk.order_delivered")):
            paced = await paced_latencies(servers, servers[2], token, deliver_and_watch, warmup=warmup, window=window)
    finally:
        await runtime.engine.dispose()
    return await report_against_bare_hop(report, "delivered → survey listed", "deliveries", paced)
