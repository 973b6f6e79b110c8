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
import sys
import time
import uuid

from benchmarks.common import (
    BENCH_REP,
    CONTACT_NAME,
    DELIVERY_ADDRESS,
    GOODS,
    POLLED_AGAINST_HOP,
    RATE,
    Report,
    Server,
    contact,
    latency_window,
    paced_latencies,
    report_against_bare_hop,
    running,
    seconds_until_listed,
    service_runtime,
)


async def run(quick: bool) -> Report:
    from datetime import timedelta

    from services.contracts import handlers
    from services.contracts.domain import ContractLine, ReviewDecision
    from services.contracts.domain.signing import Party, Signatory
    from services.orders.config import get_settings as orders_settings
    from shared.auth import Principal, mint_token

    warmup, window = latency_window(quick)
    report = Report(
        "2. Contract signed → order visible through the orders API",
        f"the last signature via the contracts signing handler at {RATE:g}/s for {window:g} s "
        f"(after {warmup:g} s warm-up); contracts "
        f"worker, orders worker and orders API (uvicorn, 1 worker) as real processes; {POLLED_AGAINST_HOP}.",
    )
    runtime = service_runtime("contracts")
    rep = Principal(sub=BENCH_REP, roles=frozenset({"sales_rep"}))
    legal = Principal(sub="bench-legal", roles=frozenset({"legal"}))
    token = mint_token(runtime.settings, sub=BENCH_REP, roles=["sales_rep"])

    async def prepare() -> tuple[uuid.UUID, str]:
        """A contract out for signature that the customer has signed; the company's token."""
        command = handlers.DraftContract(
            customer_id=f"bench-{uuid.uuid4().hex[:8]}",
            customer_name="Bench Customer Ltd.",
            owner_id=BENCH_REP,
            currency="CNY",
            payment_terms="net 30",
            contact=contact(),
            region="east",
            delivery_address=DELIVERY_ADDRESS,
            lines=[
                ContractLine(g.sku, g.description, g.quantity, g.unit_price, warranty_months=g.warranty_months)
                for g in GOODS
            ],
        )
        contract_id = (await handlers.draft_contract(command, runtime.uow())).id
        await handlers.submit_contract(contract_id, rep, runtime.uow())
        await handlers.review_contract(contract_id, legal, runtime.uow(), decision=ReviewDecision.APPROVE)
        _, issued = await handlers.send_for_signature(
            contract_id,
            rep,
            runtime.uow(),
            customer=Signatory(CONTACT_NAME),
            company=Signatory("Wang Fang"),
            ttl=timedelta(days=1),
        )
        tokens = {i.link.party: i.token for i in issued}
        await handlers.sign_with_link(
            handlers.SignWithLink(tokens[Party.CUSTOMER], CONTACT_NAME, confirmed=True), runtime.uow()
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

    async def sign_and_watch(pool, auth: dict[str, str]) -> float:
        contract_id, company_token = contracts.pop()
        await handlers.sign_with_link(handlers.SignWithLink(company_token, "Wang Fang", confirmed=True), runtime.uow())
        return await seconds_until_listed(pool, f"/v1/orders?contract_id={contract_id}", auth, time.monotonic())

    try:
        async with running(servers, orders_settings().queue_name("orders.contract_signed")):
            paced = await paced_latencies(servers, servers[2], token, sign_and_watch, warmup=warmup, window=window)
    finally:
        await runtime.engine.dispose()
    return await report_against_bare_hop(report, "signed → order listed", "contracts", paced)
