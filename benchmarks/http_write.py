"""Benchmark 3: the HTTP write path, ``POST /v1/contracts``, against a bare endpoint.

Both servers are real uvicorn processes with 2 workers (``uvicorn[standard]``: uvloop,
httptools; connections dealt to the workers in turn, as ``make run`` starts them),
started side by side and loaded one after the other:

* ``services.contracts.main:create_app``: bearer-token auth, request validation, the draft
  handler's unit of work (contract row, history, rendered document and ``contract.drafted`` in
  the outbox: one statement, group-committed with the drafts of the same moment);
* ``benchmarks.bare_app:create_app``: FastAPI parsing the same JSON and one raw asyncpg insert.

The load generator is a separate process (``CONCURRENCY`` keep-alive connections, each sending
its next request as soon as the previous answered; a minimal HTTP/1.1 client, see
:class:`benchmarks.http11.Http11Client` for why not httpx). Its own ceiling is checked with ``GET /healthz`` on
the bare server: the write figures mean something only well below it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from benchmarks.bare_app import CREATE_TABLE
from benchmarks.common import (
    BENCH_DB,
    MP,
    Goal,
    Report,
    Server,
    admin_connection,
    admin_dsn,
    join,
    latency_summary,
    receive,
    spawn,
)
from benchmarks.cpu import CpuMeter, describe
from benchmarks.http11 import Http11Client, request_head

CONCURRENCY = 32

CONTRACT = {
    "customer_id": "bench-customer",
    "customer_name": "Bench Customer Ltd.",
    "contact": {"name": "Li Lei", "email": "li@example.com"},
    "region": "east",
    "currency": "CNY",
    "payment_terms": "net 30",
    "delivery_address": "1 Century Ave, Shanghai",
    "lines": [
        {"sku": "PUMP-1", "description": "Pump", "quantity": "2", "unit_price": "1500.00", "warranty_months": 12},
        {"sku": "SVC-1", "description": "Install", "quantity": "1", "unit_price": "300.00"},
    ],
}


# In a body loaded with ``numbered=True``: replaced by each request's own number (8 digits).
NUMBER = "%N%"


async def generate_load(port: int, method: str, path: str, body: bytes, options: dict[str, Any], results) -> None:
    """The load generator process: ``CONCURRENCY`` closed-loop clients for warm-up + window.

    ``options``: ``headers``, ``warmup``, ``window``, ``idempotency_keys`` (a fresh
    ``Idempotency-Key`` on every request, as a mobile client sends) and ``numbered`` (``NUMBER``
    in the body becomes a number unique to the request, e.g. a new customer's phone each time).
    """
    warmup, window, keyed = options["warmup"], options["window"], options["idempotency_keys"]
    numbered = options.get("numbered", False)
    host = f"127.0.0.1:{port}"
    head = request_head(method, path, host, options["headers"], body)
    tally = Tally(warmup, window)
    numbers = itertools.count()

    async def client_loop() -> None:
        client = Http11Client("127.0.0.1", port)
        try:
            while time.monotonic() < tally.end:
                body_now = body.replace(NUMBER.encode(), b"%08d" % next(numbers)) if numbered else body
                if keyed or numbered:
                    headers = (
                        {**options["headers"], "Idempotency-Key": uuid.uuid4().hex} if keyed else options["headers"]
                    )
                    head_now = request_head(method, path, host, headers, body_now)
                else:
                    head_now = head
                tally.add(*await timed(client, head_now, body_now))
        finally:
            client.close()

    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    results.put(tally.summary("requests_per_s"))


class Tally:
    """What a load generator's requests did within the window (from now + warm-up)."""

    def __init__(self, warmup: float, window: float) -> None:
        self.begin = time.monotonic() + warmup
        self.end = self.begin + window
        self.window = window
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}

    def add(self, outcome: str | None, started: float, finished: float) -> None:
        if started >= self.begin and finished <= self.end:
            if outcome is None:
                self.latencies.append(finished - started)
            else:
                self.failures[outcome] = self.failures.get(outcome, 0) + 1

    def summary(self, rate_name: str) -> dict[str, Any]:
        rate = len(self.latencies) / self.window
        return {rate_name: rate, "failures": self.failures, **latency_summary(self.latencies)}


async def load(
    server: Server,
    method: str,
    path: str,
    *,
    warmup: float,
    window: float,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    idempotency_keys: bool = False,
    numbered: bool = False,
) -> dict[str, Any]:
    """Load ``server`` from a fresh load-generator process; its figures and the CPU it took."""
    body = json.dumps(json_body).encode() if json_body is not None else b""
    options = {
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "warmup": warmup,
        "window": window,
        "idempotency_keys": idempotency_keys,
        "numbered": numbered,
    }
    return await from_generator(server, generate_load, (server.port, method, path, body, options), warmup, window)


async def from_generator(
    server: Server, generator_fn: Callable[..., Coroutine[Any, Any, None]], args: tuple, warmup: float, window: float
) -> dict[str, Any]:
    """Run ``generator_fn(*args, results)`` in its own process against ``server``; what it reported
    (one dict on ``results``) and the CPU the window took."""
    results = MP.Queue()
    generator = spawn(generator_fn, *args, results, name="load-generator")
    await asyncio.sleep(warmup)
    meter = CpuMeter({"load generator": generator.pid, server.name: server.pid})
    meter.start()
    await asyncio.sleep(window)
    cores = meter.stop()
    outcome = await receive(results, generator)
    await join(generator)
    server.check_alive()
    return {**outcome, "cpu_cores": cores}


async def timed(client: Http11Client, head: bytes, body: bytes = b"") -> tuple[str | None, float, float]:
    """One request: None or what went wrong (``HTTP 4xx/5xx`` or the exception), its start and end."""
    started = time.monotonic()
    try:
        status, _ = await client.request(head, body)
        outcome = None if status < 400 else f"HTTP {status}"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        outcome = type(exc).__name__
    return outcome, started, time.monotonic()


async def run(quick: bool) -> Report:
    from services.contracts.config import get_settings
    from shared.auth import mint_token

    warmup, window = (1.0, 3.0) if quick else (3.0, 15.0)
    report = Report(
        "3. HTTP write path: POST /v1/contracts",
        f"uvicorn, 2 workers each; {CONCURRENCY} concurrent keep-alive connections (load generator in its own "
        f"process); "
        f"{window:g} s window after {warmup:g} s warm-up. Baseline: FastAPI + one raw asyncpg insert, 2 workers.",
    )
    admin = await admin_connection()
    try:
        await admin.execute(CREATE_TABLE)
    finally:
        await admin.close()
    os.environ["BENCH_BARE_DSN"] = admin_dsn(BENCH_DB)
    token = mint_token(get_settings(), sub="bench-rep", roles=["sales_rep"])
    auth = {"Authorization": f"Bearer {token}"}

    contracts = Server.uvicorn("contracts-api", "services.contracts.main:create_app", workers=2)
    bare = Server.uvicorn("bare-api", "benchmarks.bare_app:create_app", workers=2)
    results: dict[str, dict[str, Any]] = {}
    try:
        await contracts.start()
        await bare.start()
        timing = {"warmup": warmup, "window": window}
        results["healthz"] = await load(bare, "GET", "/healthz", **timing)
        results["bare"] = await load(bare, "POST", "/v1/things", json_body=CONTRACT, **timing)
        write = {"json_body": CONTRACT, "headers": auth, **timing}
        results["contracts"] = await load(contracts, "POST", "/v1/contracts", **write)
        if not quick:
            results["idempotent"] = await load(contracts, "POST", "/v1/contracts", idempotency_keys=True, **write)
    finally:
        await contracts.stop()
        await bare.stop()

    c, b = results["contracts"], results["bare"]
    report.add("requests/s", c["requests_per_s"], "req/s", b["requests_per_s"], Goal(">=", 0.4, of="ratio"))
    report.add("p50 latency", c["p50_ms"], "ms", b["p50_ms"])
    report.add("p99 latency", c["p99_ms"], "ms", b["p99_ms"], Goal("<=", 50))
    h = results["healthz"]
    report.notes.append(
        f"load generator ceiling (GET /healthz on the bare server): {h['requests_per_s']:,.0f} req/s, "
        f"p50 {h['p50_ms']:.1f} ms — " + describe(h["cpu_cores"])
    )
    report.notes.append("POST /v1/contracts " + describe(c["cpu_cores"]))
    report.notes.append("bare POST " + describe(b["cpu_cores"]))
    if "idempotent" in results:
        i = results["idempotent"]
        report.add("requests/s with Idempotency-Key", i["requests_per_s"], "req/s", b["requests_per_s"])
        report.add("p99 latency with Idempotency-Key", i["p99_ms"], "ms", b["p99_ms"])
    report.details = {"concurrency": CONCURRENCY, "warmup": warmup, "window": window, "runs": results}
    if failures := {name: r["failures"] for name, r in results.items() if r["failures"]}:
        report.error = f"failed requests: {failures}"
    return report
