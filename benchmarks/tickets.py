"""Benchmark 7: tickets created per second through the service desk API, against a bare endpoint.

Both servers are real uvicorn processes with 2 workers, loaded one after the other:

* ``services.service_desk.main:create_app``: ``POST /v1/tickets`` with a support agent's bearer
  token: auth, validation, the ticket number from a sequence, the repeat-issue lookup, the
  customer's tier from its signed contracts, auto-assignment (the group's agents locked, their
  open-ticket counts read, the least loaded on duty chosen), the SLA clocks and their four
  durable timers, the ticket row and ``ticket.opened`` + ``ticket.assigned`` in the outbox;
* ``benchmarks.bare_app:create_app``: FastAPI parsing the same JSON and one raw asyncpg insert.

Twenty agents of the ticket's group are on duty with room for every ticket, so each ticket is
assigned: auto-assignment serialises on the group's agents (that is what keeps two tickets from
both taking an agent's last slot), which is the figure's main cost under concurrency.
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.bare_app import CREATE_TABLE
from benchmarks.common import BENCH_DB, Report, Server, admin_connection, admin_dsn
from benchmarks.cpu import describe
from benchmarks.http_write import CONCURRENCY, load

AGENTS = 20
TICKET = {
    "subject": "水泵漏水 pump leaking at the seal",
    "description": "The customer reports a leak after installation.",
    "channel": "phone",
    "type": "inquiry",
    "priority": "P2",
    "customer_id": "bench-customer",
    "customer_name": "Bench Customer Ltd.",
    "contact": {"name": "Li Lei", "phone": "+8613800138000"},
}


async def run(quick: bool) -> Report:
    from services.service_desk.config import get_settings
    from shared.auth import mint_token

    warmup, window = (1.0, 3.0) if quick else (3.0, 15.0)
    report = Report(
        "7. Tickets created per second: POST /v1/tickets",
        f"uvicorn, 2 workers each; {CONCURRENCY} concurrent keep-alive connections (load generator in its own "
        f"process); {AGENTS} agents of the group on duty (every ticket auto-assigned); {window:g} s window after "
        f"{warmup:g} s warm-up. Baseline: FastAPI + one raw asyncpg insert, 2 workers.",
    )
    admin = await admin_connection()
    try:
        await admin.execute(CREATE_TABLE)
        await admin.executemany(
            "INSERT INTO service_desk.agents (id, version, name, groups, capacity, on_duty, created_at) "
            "VALUES ($1, 1, $1, ARRAY['general'], 1000000, true, now()) ON CONFLICT (id) DO NOTHING",
            [(f"bench-agent-{k:02d}",) for k in range(AGENTS)],
        )
    finally:
        await admin.close()
    os.environ["BENCH_BARE_DSN"] = admin_dsn(BENCH_DB)
    token = mint_token(get_settings(), sub="bench-agent-00", roles=["support_agent"])

    api = Server.uvicorn("service-desk-api", "services.service_desk.main:create_app", workers=2)
    bare = Server.uvicorn("bare-api", "benchmarks.bare_app:create_app", workers=2)
    results: dict[str, dict[str, Any]] = {}
    try:
        await api.start()
        await bare.start()
        timing = {"warmup": warmup, "window": window}
        results["bare"] = await load(bare, "POST", "/v1/things", json_body=TICKET, **timing)
        auth = {"Authorization": f"Bearer {token}"}
        results["tickets"] = await load(api, "POST", "/v1/tickets", json_body=TICKET, headers=auth, **timing)
    finally:
        await api.stop()
        await bare.stop()

    t, b = results["tickets"], results["bare"]
    report.add("tickets/s", t["requests_per_s"], "/s", b["requests_per_s"])
    report.add("p50 latency", t["p50_ms"], "ms", b["p50_ms"])
    report.add("p99 latency", t["p99_ms"], "ms", b["p99_ms"])
    report.notes.append("POST /v1/tickets " + describe(t["cpu_cores"]))
    report.notes.append("bare POST " + describe(b["cpu_cores"]))
    report.details = {"concurrency": CONCURRENCY, "agents": AGENTS, "warmup": warmup, "window": window, "runs": results}
    if failures := {name: r["failures"] for name, r in results.items() if r["failures"]}:
        report.error = f"failed requests: {failures}"
    return report
