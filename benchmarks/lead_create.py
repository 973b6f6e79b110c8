"""Benchmark 11: leads created per second through ``POST /v1/leads``, against a bare endpoint.

Both servers are real uvicorn processes with 2 workers (the leads API's normal count), loaded
one after the other by benchmark 3's load generator (``CONCURRENCY`` keep-alive connections):

* ``services.leads.main:create_app``: a sales rep's bearer token, request validation, phone
  (E.164), e-mail and company-name normalisation, the customer-key registry claimed for each
  match key (``INSERT … ON CONFLICT``, the first-registered-owner rule), grading, the rep's
  team, the lead row and ``lead.created`` in the outbox, one unit of work;
* ``benchmarks.bare_app:create_app``: FastAPI parsing the same JSON and one raw asyncpg insert.

Every request is a new customer (its number in the phone, e-mail and company name), so each
one claims fresh keys rather than finding an earlier lead.
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.bare_app import CREATE_TABLE
from benchmarks.common import BENCH_DB, Report, Server, admin_connection, admin_dsn
from benchmarks.cpu import describe
from benchmarks.http_write import CONCURRENCY, NUMBER, load

REP = "bench-rep-0"
LEAD = {
    "source": "trade_show",
    "company_name": f"Bench Company {NUMBER} 科技有限公司",
    "contact_name": "Li Lei",
    "phone": f"138 {NUMBER}",
    "email": f"Buyer.{NUMBER}@Example.com",
    "region": "east",
    "industry": "pumps",
    "campaign": "spring-fair",
    "utm_source": "wechat",
    "utm_medium": "social",
    "budget": "600000.00",
    "currency": "CNY",
    "decision_timeframe": "within_1_month",
    "need_fit": "high",
}


async def run(quick: bool) -> Report:
    from services.leads.config import get_settings
    from shared.auth import mint_token

    warmup, window = (1.0, 3.0) if quick else (3.0, 15.0)
    report = Report(
        "11. Leads created per second: POST /v1/leads",
        f"uvicorn, 2 workers each; {CONCURRENCY} concurrent keep-alive connections (load generator in its own "
        f"process); a sales rep registers a new customer each time; {window:g} s window after {warmup:g} s "
        "warm-up. Baseline: FastAPI + one raw asyncpg insert, 2 workers.",
    )
    admin = await admin_connection()
    try:
        await admin.execute(CREATE_TABLE)
        await admin.execute(
            "INSERT INTO leads.sales_teams (id, version, name, region, created_at) "
            "VALUES ('bench-team-east', 1, 'East', 'east', now()) ON CONFLICT (id) DO NOTHING"
        )
        await admin.execute(
            "INSERT INTO leads.sales_reps (id, version, name, team_id, region, industries, capacity, status, "
            "created_at) VALUES ($1, 1, $1, 'bench-team-east', 'east', ARRAY['pumps'], 1000000, 'active', now()) "
            "ON CONFLICT (id) DO NOTHING",
            REP,
        )
    finally:
        await admin.close()
    os.environ["BENCH_BARE_DSN"] = admin_dsn(BENCH_DB)
    token = mint_token(get_settings(), sub=REP, roles=["sales_rep"], team="bench-team-east")

    api = Server.uvicorn("leads-api", "services.leads.main:create_app", workers=2)
    bare = Server.uvicorn("bare-api", "benchmarks.bare_app:create_app", workers=2)
    results: dict[str, dict[str, Any]] = {}
    try:
        await api.start()
        await bare.start()
        timing = {"warmup": warmup, "window": window, "numbered": True}
        results["bare"] = await load(bare, "POST", "/v1/things", json_body=LEAD, **timing)
        auth = {"Authorization": f"Bearer {token}"}
        results["leads"] = await load(api, "POST", "/v1/leads", json_body=LEAD, headers=auth, **timing)
    finally:
        await api.stop()
        await bare.stop()

    admin = await admin_connection()
    try:
        created = await admin.fetchval("SELECT count(*) FROM leads.leads WHERE registered_by = $1", REP)
        duplicates = await admin.fetchval("SELECT count(*) FROM leads.leads WHERE duplicate_of_lead_id IS NOT NULL")
    finally:
        await admin.close()
    lead, b = results["leads"], results["bare"]
    report.add("leads/s", lead["requests_per_s"], "/s", b["requests_per_s"])
    report.add("p50 latency", lead["p50_ms"], "ms", b["p50_ms"])
    report.add("p99 latency", lead["p99_ms"], "ms", b["p99_ms"])
    report.notes.append(f"{created} leads created (warm-up included), {duplicates} of them linked as duplicates")
    report.notes.append("POST /v1/leads " + describe(lead["cpu_cores"]))
    report.notes.append("bare POST " + describe(b["cpu_cores"]))
    report.details = {"concurrency": CONCURRENCY, "warmup": warmup, "window": window, "runs": results}
    if failures := {name: r["failures"] for name, r in results.items() if r["failures"]}:
        report.error = f"failed requests: {failures}"
    elif duplicates:
        report.error = f"{duplicates} leads were matched to an earlier one: the customers were not all new"
    return report
