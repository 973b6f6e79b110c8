"""Benchmark 9: opportunity won → contract draft visible through the contracts API, and drafts/s.

Real processes, as ``make run`` starts them: the leads worker (its outbox relay publishes the
events), the contracts worker (its ``contracts.opportunity_won`` consumer drafts the contract,
renders and stores its document and writes ``contract.drafted``, in one transaction with the
inbox row) and the contracts API (uvicorn, one worker). The driver commits
``opportunity.won.v1`` events through a real unit of work into the leads outbox (as the leads
service does when an opportunity is won: the event alone).

* Latency: events at a steady rate; for each, ``GET /v1/contracts?opportunity_id=…`` with the
  owner's bearer token is polled until the draft is listed. From the event's commit to the poll
  that first listed it: an upper bound, coarse by up to one poll interval. Baseline: one bare
  aio-pika hop (publish with confirms → consume) at the same rate.
* Throughput: a burst of events committed at once (50 per transaction); drafts per second from
  the first commit to the moment the last draft exists. Baseline: bare aio-pika publish →
  consume saturation (events/s) on the same broker, measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from benchmarks.broker import declare_queue, own_exchange
from benchmarks.common import Report, Server, admin_connection, paced
from benchmarks.contract_to_order import (
    POLL_INTERVAL,
    RATE,
    TIMEOUT,
    _wait_for_consumer,
    report_against_bare_hop,
    seconds_until_listed,
)
from benchmarks.cpu import CpuMeter, describe
from benchmarks.http11 import Http11Pool
from benchmarks.pipeline import BASELINE_CONSUMER, BASELINE_ROUTING_KEY, Plan, Side, consume_bare, measure, publish_bare

PER_TX = 50


async def run(quick: bool) -> Report:
    from services.contracts.config import get_settings as contracts_settings
    from services.leads.config import get_settings as leads_settings
    from services.leads.db import platform_tables
    from shared.auth import mint_token
    from shared.config import ServiceSettings
    from shared.db import create_engine
    from shared.events import ContactInfo, ContractLine, OpportunityWon
    from shared.service import Runtime

    warmup, window = (1.0, 5.0) if quick else (3.0, 20.0)
    burst = 300 if quick else 2000
    report = Report(
        "9. Opportunity won → contract draft visible; drafts per second",
        f"commit opportunity.won into the leads outbox at {RATE:g}/s for {window:g} s (after {warmup:g} s "
        f"warm-up), then a burst of {burst} ({PER_TX}/transaction); leads worker (relay), contracts worker and "
        f"contracts API (uvicorn, 1 worker) as real processes; poll every {POLL_INTERVAL * 1000:g} ms. "
        f"Baselines: one bare aio-pika hop (confirms → consume) at {RATE:g}/s; bare aio-pika saturation.",
    )
    settings = leads_settings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    token = mint_token(settings, sub="bench-rep", roles=["sales_rep"])

    def won() -> OpportunityWon:
        return OpportunityWon(
            opportunity_id=uuid.uuid4(),
            quote_id=uuid.uuid4(),
            account_id=f"bench-{uuid.uuid4().hex[:8]}",
            customer_name="上海示例有限公司",
            contact=ContactInfo(name="Han Meimei", email="han@example.com"),
            owner_id="bench-rep",
            region="east",
            currency="CNY",
            lines=(
                ContractLine(
                    line_no=1,
                    sku="PUMP-1",
                    description="Pump",
                    quantity=Decimal(2),
                    unit_price=Decimal("1500.00"),
                    amount=Decimal("3000.00"),
                    warranty_months=12,
                ),
                ContractLine(
                    line_no=2,
                    sku="SVC-1",
                    description="Install",
                    quantity=Decimal(1),
                    unit_price=Decimal("300.00"),
                    amount=Decimal("300.00"),
                ),
            ),
            subtotal_amount=Decimal("3300.00"),
            total_amount=Decimal("3300.00"),
            payment_terms="net 30",
            delivery_address="1 Century Ave, Shanghai",
            won_at=datetime.now(UTC),
        )

    async def commit(events: list[OpportunityWon]) -> None:
        uow = runtime.uow()
        async with uow:
            for event in events:
                uow.emit(event, subject=str(event.opportunity_id))
            await uow.commit()

    servers = [
        Server("leads-worker", [sys.executable, "-m", "services.leads.worker"]),
        Server("contracts-worker", [sys.executable, "-m", "services.contracts.worker"]),
        Server.uvicorn("contracts-api", "services.contracts.main:create_app", workers=1),
    ]
    admin = await admin_connection()
    try:
        for server in servers:
            await server.start()
        await _wait_for_consumer(contracts_settings().queue_name("contracts.opportunity_won"))
        pool = Http11Pool("127.0.0.1", servers[2].port, size=8)
        auth = {"Authorization": f"Bearer {token}"}
        try:

            async def win_and_watch() -> float:
                event = won()
                await commit([event])
                path = f"/v1/contracts?opportunity_id={event.opportunity_id}"
                return await seconds_until_listed(pool, path, auth, time.monotonic())

            primed = await win_and_watch()  # primes the path (connections, prepared statements)
            latencies: list[float | None] = [None] * int(RATE * (warmup + window))

            async def fire(k: int) -> None:
                latencies[k] = await win_and_watch()

            watched = {"driver (this process)": os.getpid(), **{server.name: server.pid for server in servers}}
            meter = CpuMeter(watched)
            meter.start()
            await paced(RATE, warmup + window, fire)
            cores = meter.stop()
        finally:
            pool.close()

        before = await admin.fetchval("SELECT count(*) FROM contracts.contracts")
        events = [won() for _ in range(burst)]
        meter = CpuMeter(watched)
        meter.start()
        started = time.monotonic()
        for i in range(0, burst, PER_TX):
            await commit(events[i : i + PER_TX])
        while await admin.fetchval("SELECT count(*) FROM contracts.contracts") < before + burst:
            if time.monotonic() - started > TIMEOUT * 4:
                raise RuntimeError(f"the burst of {burst} was not drafted in {TIMEOUT * 4:g}s")
            await asyncio.sleep(0.05)
        drafted_per_s = burst / (time.monotonic() - started)
        burst_cores = meter.stop()
        for server in servers:
            server.check_alive()
    finally:
        await admin.close()
        for server in reversed(servers):
            await server.stop()
        await runtime.engine.dispose()

    report = await report_against_bare_hop(
        report,
        "won → draft listed",
        "won opportunities",
        latencies,
        rate=RATE,
        poll_interval=POLL_INTERVAL,
        primed=primed,
        warmup=warmup,
        window=window,
        cores=cores,
    )
    with own_exchange("won-to-draft"):
        queue = await declare_queue(ServiceSettings(), BASELINE_CONSUMER, [BASELINE_ROUTING_KEY])
        plan = Plan(warmup=1.0, window=3.0) if quick else Plan(warmup=3.0, window=10.0)
        bare = (await measure(Side("bare", queue, publish_bare, consume_bare), plan))["saturation"]
    report.add(f"contracts drafted per second (burst of {burst})", drafted_per_s, "/s", bare["events_per_s"])
    report.notes.append(f"during the burst {describe(burst_cores)}")
    report.details["burst"] = {"events": burst, "drafted_per_s": drafted_per_s, "bare": bare}
    return report
