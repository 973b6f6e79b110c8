"""Benchmark 6: order approvals per second through the orders API, against a bare endpoint.

Both servers are real uvicorn processes with 2 workers, loaded one after the other:

* ``services.orders.main:create_app``: ``POST /v1/orders/{id}/approve`` with a sales manager's,
  then finance's bearer token: auth, the order loaded and locked, the approval level checked
  against the shared discount policy, finance's credit check (the customer's credit lock, limit
  and outstanding balance), the versioned update and ``order.approved`` in the outbox;
* ``benchmarks.bare_app:create_app``: ``POST /v1/things/{id}/approve``, one raw asyncpg
  ``UPDATE`` of a JSONB row, asked twice per row as well.

The orders are entered beforehand (untimed, through the orders handler), each for its own
customer, with no discount beyond the rep's authority and within the default credit limit: each
takes two decisions. The load generator is a separate process with ``CONCURRENCY`` keep-alive
connections; each takes the next order and sends its two approvals one after the other. One
approval is one decision answered 200; running out of orders before the window ends is an error.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from decimal import Decimal
from typing import Any

from benchmarks.bare_app import CREATE_TABLE
from benchmarks.common import BENCH_DB, Report, Server, admin_connection, admin_dsn
from benchmarks.cpu import describe
from benchmarks.http11 import Http11Client, request_head
from benchmarks.http_write import CONCURRENCY, Tally, from_generator, timed

# Entered beforehand: well above what a window takes (the run fails rather than idle if not).
ORDERS = {True: 3_000, False: 10_000}
THINGS = 100_000
ENTRY_CONCURRENCY = 8


async def approve_loop(port: int, path: str, ids: list[str], steps: list[dict[str, str]], options, results) -> None:
    """The load generator process: ``CONCURRENCY`` clients, each approving one object at a time.

    ``path`` has an ``{id}`` placeholder; ``steps`` are the headers of each approval in turn.
    """
    host = f"127.0.0.1:{port}"
    todo = iter(ids)
    ran_out = False
    tally = Tally(options["warmup"], options["window"])

    async def client_loop() -> None:
        nonlocal ran_out
        client = Http11Client("127.0.0.1", port)
        try:
            while time.monotonic() < tally.end:
                object_id = next(todo, None)
                if object_id is None:
                    ran_out = True
                    return
                for headers in steps:
                    head = request_head("POST", path.format(id=object_id), host, headers)
                    tally.add(*await timed(client, head))
        finally:
            client.close()

    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    results.put(tally.summary("approvals_per_s") | {"ran_out": ran_out})


async def measure(
    server: Server, path: str, ids: list[str], steps: list[dict[str, str]], *, warmup: float, window: float
) -> dict[str, Any]:
    """Approve from a fresh load-generator process; its figures and the CPU the window took."""
    options = {"warmup": warmup, "window": window}
    return await from_generator(server, approve_loop, (server.port, path, ids, steps, options), warmup, window)


async def enter_orders(count: int) -> list[str]:
    """Orders at the sales manager's level, one customer each (untimed)."""
    from services.orders import handlers
    from services.orders.config import get_settings
    from services.orders.db import platform_tables
    from services.orders.domain import OrderLine
    from shared.auth import Principal
    from shared.db import create_engine
    from shared.service import Runtime

    settings = get_settings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    rep = Principal(sub="bench-rep", roles=frozenset({"sales_rep"}))
    line = OrderLine(
        line_no=1,
        sku="PUMP-1",
        description="Pump",
        quantity=Decimal(2),
        unit_price=Decimal("1500.00"),
        amount=Decimal("3000.00"),
    )
    ids: list[str] = []

    async def enter_some(share: int) -> None:
        for _ in range(share):
            command = handlers.EnterOrder(
                customer_id=f"bench-{uuid.uuid4().hex[:12]}",
                customer_name="Bench Customer Ltd.",
                currency="CNY",
                lines=[line],
                total_amount=Decimal("3000.00"),
                payment_terms="net 30",
                delivery_address="1 Century Ave, Shanghai",
            )
            ids.append(str((await handlers.enter_order(command, rep, runtime.uow())).id))

    try:
        shares = [count // ENTRY_CONCURRENCY + (k < count % ENTRY_CONCURRENCY) for k in range(ENTRY_CONCURRENCY)]
        await asyncio.gather(*(enter_some(share) for share in shares))
    finally:
        await runtime.engine.dispose()
    return ids


async def run(quick: bool) -> Report:
    from services.orders.config import get_settings
    from shared.auth import mint_token

    warmup, window = (1.0, 3.0) if quick else (3.0, 10.0)
    report = Report(
        "6. Order approvals per second: POST /v1/orders/{id}/approve",
        f"uvicorn, 2 workers each; {CONCURRENCY} concurrent keep-alive connections (load generator in its own "
        f"process), each approving one order at a time (sales manager, then finance with the credit check); "
        f"{window:g} s window after {warmup:g} s warm-up. Baseline: FastAPI + one raw asyncpg UPDATE per "
        "approval, 2 workers.",
    )
    entered = time.monotonic()
    order_ids = await enter_orders(ORDERS[quick])
    entry_s = time.monotonic() - entered
    admin = await admin_connection()
    try:
        await admin.execute(CREATE_TABLE)
        rows = await admin.fetch(
            "INSERT INTO bench.things (id, body) SELECT gen_random_uuid(), '{}' FROM generate_series(1, $1) "
            "RETURNING id",
            THINGS,
        )
    finally:
        await admin.close()
    thing_ids = [str(row["id"]) for row in rows]
    os.environ["BENCH_BARE_DSN"] = admin_dsn(BENCH_DB)
    settings = get_settings()
    manager = {"Authorization": f"Bearer {mint_token(settings, sub='bench-manager', roles=['sales_manager'])}"}
    finance = {"Authorization": f"Bearer {mint_token(settings, sub='bench-finance', roles=['finance'])}"}

    orders = Server.uvicorn("orders-api", "services.orders.main:create_app", workers=2)
    bare = Server.uvicorn("bare-api", "benchmarks.bare_app:create_app", workers=2)
    timing = {"warmup": warmup, "window": window}
    try:
        await orders.start()
        await bare.start()
        bare_run = await measure(bare, "/v1/things/{id}/approve", thing_ids, [{}, {}], **timing)
        api_run = await measure(orders, "/v1/orders/{id}/approve", order_ids, [manager, finance], **timing)
    finally:
        await orders.stop()
        await bare.stop()

    report.add("approvals/s", api_run["approvals_per_s"], "/s", bare_run["approvals_per_s"])
    report.add("p50 latency", api_run["p50_ms"], "ms", bare_run["p50_ms"])
    report.add("p99 latency", api_run["p99_ms"], "ms", bare_run["p99_ms"])
    report.notes.append(f"{len(order_ids)} orders entered beforehand in {entry_s:.0f} s (untimed)")
    report.notes.append("POST /v1/orders/{id}/approve " + describe(api_run["cpu_cores"]))
    report.notes.append("bare approve " + describe(bare_run["cpu_cores"]))
    report.details = {
        "concurrency": CONCURRENCY,
        "warmup": warmup,
        "window": window,
        "runs": {"orders": api_run, "bare": bare_run},
    }
    problems = []
    if failures := {name: r["failures"] for name, r in (("orders", api_run), ("bare", bare_run)) if r["failures"]}:
        problems.append(f"failed requests: {failures}")
    if ran_out := [name for name, r in (("orders", api_run), ("bare", bare_run)) if r["ran_out"]]:
        problems.append(f"ran out of objects to approve before the window ended: {ran_out}")
    report.error = "; ".join(problems) or None
    return report
