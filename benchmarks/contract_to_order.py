"""Benchmark 2: contract signed → order visible through the orders API.

Real processes, as ``make run`` starts them: the contracts worker (its outbox relay), the orders
worker (its ``orders.contract_signed`` consumer) and the orders API (uvicorn, one worker). The
driver takes the contracts through drafting, legal review and sending for signature, and has the
customer sign, beforehand (untimed); then the company signatory signs them at a steady rate
through the real signing handler (``sign_with_link``, the last signature, which signs the
contract and emits ``contract.signed``) and, for each, polls
``GET /v1/orders?contract_id=…`` with a sales rep's bearer token until the order is listed
(through a few keep-alive connections: see :mod:`benchmarks.http11` for why not httpx).

The figure is from the moment the signing transaction's commit returned to the moment the poll
that first listed the order returned: an upper bound, coarse by up to one poll interval.
Baseline, beside it: one bare aio-pika hop (publish with confirms → consume) at the same rate.
The other consumers bound to ``contract.signed`` (leads, webhooks) are not running: their
queues receive their copies and are deleted at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from decimal import Decimal

from benchmarks.broker import QueueProbe
from benchmarks.common import Report, Server, latency_summary, paced
from benchmarks.cpu import CpuMeter, describe
from benchmarks.http11 import Http11Pool
from benchmarks.pipeline import bare_hop_latency

RATE = 50.0
POLL_INTERVAL = 0.01
FIRST_POLL_AFTER = 0.005
TIMEOUT = 30.0


async def run(quick: bool) -> Report:
    from datetime import timedelta

    from services.contracts import handlers
    from services.contracts.config import get_settings as contracts_settings
    from services.contracts.db import platform_tables
    from services.contracts.domain import ContractLine, ReviewDecision
    from services.contracts.domain.signing import Party, Signatory
    from services.orders.config import get_settings as orders_settings
    from shared.auth import Principal, mint_token
    from shared.db import create_engine
    from shared.events import ContactInfo
    from shared.service import Runtime

    warmup, window = (1.0, 5.0) if quick else (3.0, 20.0)
    report = Report(
        "2. Contract signed → order visible through the orders API",
        f"the last signature via the contracts signing handler at {RATE:g}/s for {window:g} s "
        f"(after {warmup:g} s warm-up); contracts "
        f"worker, orders worker and orders API (uvicorn, 1 worker) as real processes; poll every "
        f"{POLL_INTERVAL * 1000:g} ms. Baseline: one bare aio-pika hop (confirms → consume) at {RATE:g}/s.",
    )
    settings = contracts_settings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    rep = Principal(sub="bench-rep", roles=frozenset({"sales_rep"}))
    legal = Principal(sub="bench-legal", roles=frozenset({"legal"}))
    token = mint_token(settings, sub="bench-rep", roles=["sales_rep"])

    async def prepare() -> tuple[uuid.UUID, str]:
        """A contract out for signature that the customer has signed; the company's token."""
        command = handlers.DraftContract(
            customer_id=f"bench-{uuid.uuid4().hex[:8]}",
            customer_name="Bench Customer Ltd.",
            owner_id="bench-rep",
            currency="CNY",
            payment_terms="net 30",
            contact=ContactInfo(name="Han Meimei", email="han@example.com"),
            region="east",
            delivery_address="1 Century Ave, Shanghai",
            lines=[
                ContractLine(sku="PUMP-1", description="Pump", quantity=Decimal(2), unit_price=Decimal("1500.00")),
                ContractLine(sku="SVC-1", description="Install", quantity=Decimal(1), unit_price=Decimal("300.00")),
            ],
        )
        contract_id = (await handlers.draft_contract(command, runtime.uow())).id
        await handlers.submit_contract(contract_id, rep, runtime.uow())
        await handlers.review_contract(contract_id, legal, runtime.uow(), decision=ReviewDecision.APPROVE)
        _, issued = await handlers.send_for_signature(
            contract_id,
            rep,
            runtime.uow(),
            customer=Signatory("Han Meimei"),
            company=Signatory("Wang Fang"),
            ttl=timedelta(days=1),
        )
        tokens = {i.link.party: i.token for i in issued}
        await handlers.sign_with_link(
            handlers.SignWithLink(tokens[Party.CUSTOMER], "Han Meimei", confirmed=True), runtime.uow()
        )
        return contract_id, tokens[Party.COMPANY]

    count = int(RATE * (warmup + window)) + 1
    contracts: list[tuple[uuid.UUID, str]] = []

    async def prepare_some(n: int) -> None:
        for _ in range(n):
            contracts.append(await prepare())

    await asyncio.gather(*(prepare_some(count // 8 + 1) for _ in range(8)))

    servers = [
        Server("contracts-worker", [sys.executable, "-m", "services.contracts.worker"]),
        Server("orders-worker", [sys.executable, "-m", "services.orders.worker"]),
        Server.uvicorn("orders-api", "services.orders.main:create_app", workers=1),
    ]
    try:
        for server in servers:
            await server.start()
        await _wait_for_consumer(orders_settings().queue_name("orders.contract_signed"))
        pool = Http11Pool("127.0.0.1", servers[2].port, size=8)
        auth = {"Authorization": f"Bearer {token}"}
        try:

            async def sign_and_watch(contract: tuple[uuid.UUID, str]) -> float:
                contract_id, company_token = contract
                await handlers.sign_with_link(
                    handlers.SignWithLink(company_token, "Wang Fang", confirmed=True), runtime.uow()
                )
                return await seconds_until_listed(pool, f"/v1/orders?contract_id={contract_id}", auth, time.monotonic())

            # The first contract primes the whole path (connections, prepared statements).
            primed = await sign_and_watch(contracts.pop())
            latencies: list[float | None] = [None] * len(contracts)

            async def fire(k: int) -> None:
                latencies[k] = await sign_and_watch(contracts[k])

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
        "signed → order listed",
        "contracts",
        latencies,
        rate=RATE,
        poll_interval=POLL_INTERVAL,
        primed=primed,
        warmup=warmup,
        window=window,
        cores=cores,
    )


async def report_against_bare_hop(
    report: Report,
    figure_name: str,
    noun: str,
    latencies: list[float | None],
    *,
    rate: float,
    poll_interval: float,
    primed: float,
    warmup: float,
    window: float,
    cores: dict[str, float],
) -> Report:
    """p50/p99 of the paced run after its warm-up, beside one bare broker hop at the same rate."""
    measured = [v for v in latencies[int(rate * warmup) :] if v is not None]
    figure = latency_summary(measured)
    hop = await bare_hop_latency(rate, warmup, window)
    report.add(f"p50 {figure_name} at {rate:g}/s", figure["p50_ms"], "ms", hop["p50_ms"])
    report.add(f"p99 {figure_name} at {rate:g}/s", figure["p99_ms"], "ms", hop["p99_ms"])
    report.notes.append(
        f"{figure['count']} {noun} measured (max {figure['max_ms']:.1f} ms); the first, priming the path, "
        f"took {primed * 1000:.0f} ms; resolution: one poll interval ({poll_interval * 1000:g} ms)"
    )
    report.notes.append("during the run " + describe(cores))
    report.details = {"rate": rate, "warmup": warmup, "window": window, "figure": figure, "baseline": hop}
    return report


async def seconds_until_listed(pool: Http11Pool, path: str, auth: dict[str, str], since: float) -> float:
    """Poll the list ``path`` until it lists something: the seconds from ``since`` (monotonic)."""
    await asyncio.sleep(FIRST_POLL_AFTER)
    while True:
        status, body = await pool.get(path, auth)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
        if json.loads(body)["items"]:
            return time.monotonic() - since
        if time.monotonic() - since > TIMEOUT:
            raise RuntimeError(f"GET {path} listed nothing in {TIMEOUT:g}s")
        await asyncio.sleep(POLL_INTERVAL)


async def _wait_for_consumer(queue: str, within: float = 30.0) -> None:
    from shared.config import ServiceSettings

    deadline = time.monotonic() + within
    async with QueueProbe(ServiceSettings()) as probe:
        while (await probe.depth(queue))[1] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no consumer on {queue} after {within:g} s")
            await asyncio.sleep(0.1)
