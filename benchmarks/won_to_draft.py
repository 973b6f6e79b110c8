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
import sys
import time
import uuid
from datetime import UTC, datetime

from benchmarks.broker import declare_queue, own_exchange
from benchmarks.common import (
    BENCH_REP,
    DELIVERY_ADDRESS,
    GOODS,
    GOODS_TOTAL,
    POLLED_AGAINST_HOP,
    RATE,
    TIMEOUT,
    Report,
    Server,
    admin_connection,
    commit_events,
    contact,
    latency_window,
    paced_latencies,
    processes,
    report_against_bare_hop,
    running,
    seconds_until_listed,
    service_runtime,
)
from benchmarks.cpu import CpuMeter, describe
from benchmarks.pipeline import BASELINE_CONSUMER, BASELINE_ROUTING_KEY, Plan, Side, consume_bare, measure, publish_bare

PER_TX = 50


async def run(quick: bool) -> Report:
    from services.contracts.config import get_settings as contracts_settings
    from shared.auth import mint_token
    from shared.config import ServiceSettings
    from shared.events import ContractLine, OpportunityWon

    warmup, window = latency_window(quick)
    burst = 300 if quick else 2000
    report = Report(
        "9. Opportunity won → contract draft visible; drafts per second",
        f"commit opportunity.won into the leads outbox at {RATE:g}/s for {window:g} s (after {warmup:g} s "
        f"warm-up), then a burst of {burst} ({PER_TX}/transaction); leads worker (relay), contracts worker and "
        f"contracts API (uvicorn, 1 worker) as real processes; {POLLED_AGAINST_HOP}; for the burst, bare "
        "aio-pika saturation.",
    )
    runtime = service_runtime("leads")
    token = mint_token(runtime.settings, sub=BENCH_REP, roles=["sales_rep"])

    def won() -> OpportunityWon:
        return OpportunityWon(
            opportunity_id=uuid.uuid4(),
            quote_id=uuid.uuid4(),
            account_id=f"bench-{uuid.uuid4().hex[:8]}",
            customer_name="上海示例有限公司",
            contact=contact(),
            owner_id=BENCH_REP,
            region="east",
            currency="CNY",
            lines=tuple(
                ContractLine(
                    line_no=line_no,
                    sku=goods.sku,
                    description=goods.description,
                    quantity=goods.quantity,
                    unit_price=goods.unit_price,
                    amount=goods.amount,
                    warranty_months=goods.warranty_months,
                )
                for line_no, goods in enumerate(GOODS, start=1)
            ),
            subtotal_amount=GOODS_TOTAL,
            total_amount=GOODS_TOTAL,
            payment_terms="net 30",
            delivery_address=DELIVERY_ADDRESS,
            won_at=datetime.now(UTC),
        )

    async def commit(events: list[OpportunityWon]) -> None:
        await commit_events(runtime, [(event, str(event.opportunity_id)) for event in events])

    servers = [
        Server("leads-worker", [sys.executable, "-m", "services.leads.worker"]),
        Server("contracts-worker", [sys.executable, "-m", "services.contracts.worker"]),
        Server.uvicorn("contracts-api", "services.contracts.main:create_app", workers=1),
    ]

    async def win_and_watch(pool, auth: dict[str, str]) -> float:
        event = won()
        await commit([event])
        path = f"/v1/contracts?opportunity_id={event.opportunity_id}"
        return await seconds_until_listed(pool, path, auth, time.monotonic())

    admin = await admin_connection()
    try:
        async with running(servers, contracts_settings().queue_name("contracts.opportunity_won")):
            paced = await paced_latencies(servers, servers[2], token, win_and_watch, warmup=warmup, window=window)

            before = await admin.fetchval("SELECT count(*) FROM contracts.contracts")
            events = [won() for _ in range(burst)]
            meter = CpuMeter(processes(servers))
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
    finally:
        await admin.close()
        await runtime.engine.dispose()

    report = await report_against_bare_hop(report, "won → draft listed", "won opportunities", paced)
    with own_exchange("won-to-draft"):
        queue = await declare_queue(ServiceSettings(), BASELINE_CONSUMER, [BASELINE_ROUTING_KEY])
        plan = Plan(warmup=1.0, window=3.0) if quick else Plan(warmup=3.0, window=10.0)
        bare = (await measure(Side("bare", queue, publish_bare, consume_bare), plan))["saturation"]
    report.add(f"contracts drafted per second (burst of {burst})", drafted_per_s, "/s", bare["events_per_s"])
    report.notes.append(f"during the burst {describe(burst_cores)}")
    report.details["burst"] = {"events": burst, "drafted_per_s": drafted_per_s, "bare": bare}
    return report
