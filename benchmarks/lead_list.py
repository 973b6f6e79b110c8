"""Benchmark 12: the lead list, ``GET /v1/leads``, as the table grows to 1,000,000 leads.

The leads table is seeded in bulk (``INSERT … SELECT generate_series``, the service's own list
indexes dropped meanwhile and rebuilt after, then ``VACUUM ANALYZE``) to 10,000, 100,000 and
1,000,000 rows (``--quick``: 100,000), spread over 60 reps in 12 teams in 6 regions (5 % in the
pool), who registered them (60 % the owner, 35 % a web form, 5 % another rep: an ownership
conflict), 12 sources, grades A/B/C (20/35/45 %), 80 campaigns and two years of ``created_at``;
the teams and reps are rows of their tables too.

At each size the real leads API (uvicorn, 2 workers) serves a fixed mix of the lists reps,
managers and directors ask for, from ``CONCURRENCY`` closed-loop keep-alive connections: own
leads, the team's, the region's; by grade, by source, by campaign, a created range; the first page and a deep
page (a cursor a year back, in the middle of the data). Pages of ``LIMIT``. Baseline, on the same
data in the same run: the very keyset queries the service runs (``LeadRepository.list_query``,
compiled once), by raw asyncpg from ``CONCURRENCY`` connections.

The figure that matters is flatness: p99 at 1,000,000 rows over p99 at 10,000 (goal ≤ 1.5).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
from benchmarks.cpu import describe
from benchmarks.http11 import Http11Client, request_head
from benchmarks.http_write import Tally, from_generator, timed

SIZES = {True: (10_000, 100_000), False: (10_000, 100_000, 1_000_000)}
CONCURRENCY = 8
LIMIT = 20
REGIONS, TEAMS_PER_REGION, REPS_PER_TEAM = 6, 2, 5
REPS = REGIONS * TEAMS_PER_REGION * REPS_PER_TEAM

ORG = f"""
INSERT INTO leads.sales_teams (id, version, name, region, manager_id, created_at)
SELECT 'bench-team-' || t, 1, 'Team ' || t, 'region-' || (t / {TEAMS_PER_REGION}), 'bench-mgr-' || t, now()
FROM generate_series(0, {REGIONS * TEAMS_PER_REGION - 1}) AS t
ON CONFLICT (id) DO NOTHING;
INSERT INTO leads.sales_reps (id, version, name, team_id, region, industries, capacity, status, created_at)
SELECT 'bench-rep-' || r, 1, 'Rep ' || r, 'bench-team-' || (r / {REPS_PER_TEAM}),
       'region-' || (r / {REPS_PER_TEAM * TEAMS_PER_REGION}), ARRAY['pumps'], 100000, 'active', now()
FROM generate_series(0, {REPS - 1}) AS r
ON CONFLICT (id) DO NOTHING;
"""

# Rows $1..$2 (numbers), created within the two years before $3. A rep's leads are mostly of
# their team's region; one in ten is elsewhere.
SEED = f"""
INSERT INTO leads.leads (
    id, version, owner_id, registered_by, source, company_name, contact_name, phone, email,
    region, industry, campaign, budget, currency, decision_timeframe, need_fit, grade,
    grading_rules_version, ownership_conflict, created_at, assigned_at, first_contacted_at,
    pooled_at, team)
SELECT
    gen_random_uuid(), 1, owner, registered_by,
    (ARRAY['web_form','web_form','web_form','online_ad','online_ad','search_marketing','social_media',
           'trade_show','referral','partner','import','manual'])[1 + floor(r_source * 12)::int],
    'Bench Company ' || n, 'Contact ' || n, '+86138' || lpad(n::text, 8, '0'), 'lead' || n || '@example.com',
    region, (ARRAY['pumps','valves','motors','controls'])[1 + floor(r_industry * 4)::int],
    CASE WHEN r_campaign < 0.6 THEN 'campaign-' || floor(r_campaign * 133)::int END,
    round((r_budget * 1000000)::numeric, 2), 'CNY', 'unknown', 'unknown',
    CASE WHEN r_grade < 0.2 THEN 'A' WHEN r_grade < 0.55 THEN 'B' ELSE 'C' END, 1,
    registered_by <> 'bench-web-form' AND registered_by IS DISTINCT FROM owner,
    created_at, CASE WHEN owner IS NOT NULL AND registered_by = 'bench-web-form' THEN created_at END,
    CASE WHEN owner IS NOT NULL AND r_contact < 0.7 THEN created_at + interval '3 hours' END,
    CASE WHEN owner IS NULL THEN created_at END, team
FROM (
    SELECT n, r_source, r_industry, r_campaign, r_budget, r_grade, r_contact, created_at,
           CASE WHEN pool THEN NULL ELSE 'bench-rep-' || rep END AS owner,
           CASE WHEN pool THEN NULL ELSE 'bench-team-' || (rep / {REPS_PER_TEAM}) END AS team,
           'region-' || CASE WHEN r_region < 0.9 THEN rep / {REPS_PER_TEAM * TEAMS_PER_REGION}
                             ELSE floor(r_region * 60)::int % {REGIONS} END AS region,
           CASE WHEN pool OR r_reg < 0.35 THEN 'bench-web-form'
                WHEN r_reg < 0.4 THEN 'bench-rep-' || floor(r_reg * {REPS * 20})::int % {REPS}
                ELSE 'bench-rep-' || rep END AS registered_by
    FROM (
        SELECT n, floor(random() * {REPS})::int AS rep, random() < 0.05 AS pool, random() AS r_reg,
               random() AS r_region, random() AS r_source, random() AS r_industry, random() AS r_campaign,
               random() AS r_budget, random() AS r_grade, random() AS r_contact,
               $3::timestamptz - interval '730 days' * random() AS created_at
        FROM generate_series($1::int, $2::int) AS g(n)
    ) AS draws
) AS seeded
"""


async def grow(conn: Any, have: int, want: int, anchor: datetime) -> float:
    """Seed rows ``have + 1 .. want``; the seconds it took, index rebuild and ANALYZE included."""
    started = time.monotonic()
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'leads' AND tablename = 'leads' "
        "AND indexname <> 'pk_leads'"
    )
    async with conn.transaction():
        for index in indexes:
            await conn.execute(f'DROP INDEX leads."{index["indexname"]}"')
        await conn.execute("SELECT setseed($1)", have / 2_000_000)
        await conn.execute(SEED, have + 1, want, anchor)
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for index in indexes:
            await conn.execute(index["indexdef"])
    await conn.execute("VACUUM ANALYZE leads.leads")
    return time.monotonic() - started


# -- the mix -------------------------------------------------------------------------------------


def principals() -> dict[str, list[dict[str, Any]]]:
    """Six reps, two managers, one director (token claims)."""
    reps = [{"sub": f"bench-rep-{r}", "roles": ["sales_rep"]} for r in (0, 11, 23, 34, 46, 57)]
    managers = [{"sub": f"bench-mgr-{t}", "roles": ["sales_manager"], "team": f"bench-team-{t}"} for t in (2, 9)]
    directors = [{"sub": "bench-dir-4", "roles": ["regional_director"], "region": "region-4"}]
    return {"rep": reps, "manager": managers, "director": directors}


def mix(anchor: datetime) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, principal, query parameters): each list a rep, manager or director asks for."""
    deep = {"deep": True}
    window = {"created_from": anchor - timedelta(days=90), "created_before": anchor - timedelta(days=30)}
    templates = {
        "rep": [
            ("rep: own leads", {}),
            ("rep: own leads, deep page", deep),
            ("rep: grade A", {"grade": "A"}),
            ("rep: web forms, deep page", {"source": "web_form", **deep}),
            ("rep: created 90-30 days ago", window),
        ],
        "manager": [
            ("manager: team", {}),
            ("manager: grade B, deep page", {"grade": "B", **deep}),
            ("manager: trade shows", {"source": "trade_show"}),
            ("manager: one campaign", {"campaign": "campaign-7"}),
        ],
        "director": [("director: region, grade A", {"grade": "A"}), ("director: region, deep page", deep)],
    }
    return [
        (label, who, params)
        for role, people in principals().items()
        for who in people
        for label, params in templates[role]
    ]


def deep_cursor(anchor: datetime) -> str:
    """A cursor a year back: the middle of the seeded two years (the key of no row: (t, 0))."""
    from shared.pagination import encode_cursor

    return encode_cursor([anchor - timedelta(days=365), uuid.UUID(int=0)])


def api_requests(anchor: datetime, host: str) -> list[tuple[str, bytes]]:
    """(label, request head) of each ``GET /v1/leads`` of the mix, tokens minted."""
    from services.leads.config import get_settings
    from shared.auth import mint_token

    settings = get_settings()
    requests = []
    for label, who, params in mix(anchor):
        query: dict[str, Any] = {"limit": LIMIT}
        for name, value in params.items():
            if name == "deep":
                query["cursor"] = deep_cursor(anchor)
            else:
                query[name] = value.isoformat() if isinstance(value, datetime) else value
        path = "/v1/leads?" + urllib.parse.urlencode(query)
        token = mint_token(settings, ttl=3600 * 4, **who)
        requests.append((label, request_head("GET", path, host, {"Authorization": f"Bearer {token}"})))
    return requests


def bare_queries(anchor: datetime) -> list[tuple[str, str, list[Any]]]:
    """(label, SQL, arguments): the keyset query the service runs for each list of the mix."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    from services.leads.db import LeadRepository, leads
    from shared.auth import Principal
    from shared.pagination import PageParams, keyset_select

    queries = []
    for label, who, params in mix(anchor):
        principal = Principal(
            sub=who["sub"], roles=frozenset(who["roles"]), team=who.get("team"), region=who.get("region")
        )
        page = PageParams(LIMIT, deep_cursor(anchor) if params.get("deep") else None)
        filters = {name: params.get(name) for name in ("source", "grade", "campaign")}
        stmt = LeadRepository(None).list_query(  # type: ignore[arg-type] - builds the query only
            principal,
            page,
            filters=filters,
            created_from=params.get("created_from"),
            created_before=params.get("created_before"),
        )
        compiled = keyset_select(stmt, (leads.c.created_at, leads.c.id), page).compile(dialect=dialect())
        queries.append((label, compiled.string, [compiled.params[name] for name in compiled.positiontup]))
    return queries


async def explain(conn: Any, queries: Sequence[tuple[str, str, list[Any]]]) -> dict[str, dict[str, Any]]:
    """Per list of the mix: the pages (buffers) its plan touched, the indexes it used and whether
    it sorted or bitmap-scanned more than a page of rows: the work, independent of the load."""
    plans: dict[str, dict[str, Any]] = {}
    for label, sql, args in queries:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        nodes, todo = [], [plan]
        while todo:
            node = todo.pop()
            nodes.append(node)
            todo += node.get("Plans", [])
        seen = plans.setdefault(label, {"buffers": 0, "ms": 0.0, "indexes": set(), "scans": set()})
        seen["buffers"] = max(seen["buffers"], plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])
        seen["ms"] = max(seen["ms"], plan["Actual Total Time"])
        seen["indexes"] |= {n["Index Name"] for n in nodes if "Index Name" in n}
        seen["scans"] |= {
            n["Node Type"] for n in nodes if "Scan" in n["Node Type"] and "Subquery" not in n["Node Type"]
        }
    return {label: {**p, "indexes": sorted(p["indexes"]), "scans": sorted(p["scans"])} for label, p in plans.items()}


# -- load generators -------------------------------------------------------------------------


class Labelled(Tally):
    """A tally that also keeps each label's latencies."""

    def __init__(self, warmup: float, window: float) -> None:
        super().__init__(warmup, window)
        self.by_label: dict[str, list[float]] = {}

    def add_labelled(self, label: str, outcome: str | None, started: float, finished: float) -> None:
        self.add(outcome, started, finished)
        if outcome is None and started >= self.begin and finished <= self.end:
            self.by_label.setdefault(label, []).append(finished - started)

    def summary(self, rate_name: str) -> dict[str, Any]:
        return {
            **super().summary(rate_name),
            "by_label": {label: latency_summary(values) for label, values in self.by_label.items()},
        }


async def generate_reads(port: int, requests: Sequence[tuple[str, bytes]], timing: dict[str, float], results) -> None:
    """``CONCURRENCY`` closed-loop clients walking the mix (each from its own offset)."""
    tally = Labelled(timing["warmup"], timing["window"])

    async def client_loop(k: int) -> None:
        client = Http11Client("127.0.0.1", port)
        try:
            while time.monotonic() < tally.end:
                label, head = requests[k % len(requests)]
                tally.add_labelled(label, *await timed(client, head))
                k += 1
        finally:
            client.close()

    await asyncio.gather(*(client_loop(k * len(requests) // CONCURRENCY) for k in range(CONCURRENCY)))
    results.put(tally.summary("requests_per_s"))


async def generate_bare(dsn: str, queries: Sequence[tuple[str, str, list[Any]]], timing: dict[str, float], results):
    """The same mix as raw asyncpg queries, ``CONCURRENCY`` connections."""
    import asyncpg

    tally = Labelled(timing["warmup"], timing["window"])
    pool = await asyncpg.create_pool(dsn, min_size=CONCURRENCY, max_size=CONCURRENCY)

    async def client_loop(k: int) -> None:
        async with pool.acquire() as conn:
            while time.monotonic() < tally.end:
                label, sql, args = queries[k % len(queries)]
                started = time.monotonic()
                await conn.fetch(sql, *args)
                tally.add_labelled(label, None, started, time.monotonic())
                k += 1

    try:
        await asyncio.gather(*(client_loop(k * len(queries) // CONCURRENCY) for k in range(CONCURRENCY)))
    finally:
        await pool.close()
    results.put(tally.summary("queries_per_s"))


async def measure_bare(queries: list[tuple[str, str, list[Any]]], warmup: float, window: float) -> dict[str, Any]:
    results = MP.Queue()
    timing = {"warmup": warmup, "window": window}
    process = spawn(generate_bare, admin_dsn(BENCH_DB), queries, timing, results, name="bare-queries")
    outcome = await receive(results, process, within=warmup + window + 60)
    await join(process)
    return outcome


# -- the benchmark -------------------------------------------------------------------------------


async def run(quick: bool) -> Report:
    sizes = SIZES[quick]
    warmup, window = (1.0, 3.0) if quick else (2.0, 15.0)
    report = Report(
        "12. Lead list: GET /v1/leads as the table grows",
        f"{len(mix(datetime.now(UTC)))} lists (6 reps, 2 managers, 1 director; grade, source, campaign, created "
        f"range; first and deep pages of {LIMIT}) from {CONCURRENCY} keep-alive connections, uvicorn 2 workers; "
        f"{window:g} s window after {warmup:g} s warm-up at each size. Baseline: the same keyset queries by raw "
        f"asyncpg, {CONCURRENCY} connections.",
    )
    anchor = datetime.now(UTC)
    queries = bare_queries(anchor)
    api = Server.uvicorn("leads-api", "services.leads.main:create_app", workers=2)
    measured: dict[int, dict[str, Any]] = {}
    seeding: dict[int, float] = {}
    conn = await admin_connection()
    try:
        await conn.execute(ORG)
        await api.start()
        requests = api_requests(anchor, f"127.0.0.1:{api.port}")
        have = await conn.fetchval("SELECT count(*) FROM leads.leads")
        for size in sizes:
            seeding[size] = await grow(conn, have, size, anchor)
            have = size
            # The first size also warms the server up (imports, connections, caches).
            lead_in = warmup + (3.0 if size == sizes[0] else 0.0)
            bare = await measure_bare(queries, lead_in, window)
            timing = {"warmup": lead_in, "window": window}
            served = await from_generator(api, generate_reads, (api.port, requests, timing), lead_in, window)
            measured[size] = {"api": served, "bare": bare, "plans": await explain(conn, queries)}
            print(
                f"   {size:>9,} leads (seeded in {seeding[size]:.1f} s): p99 {served['p99_ms']:.1f} ms "
                f"(bare {bare['p99_ms']:.1f} ms)",
                flush=True,
            )
    finally:
        await api.stop()
        await conn.close()

    for size in sizes:
        m = measured[size]
        report.add(f"p99 at {size:,} leads", m["api"]["p99_ms"], "ms", m["bare"]["p99_ms"])
    first, last = measured[sizes[0]], measured[sizes[-1]]
    report.add(f"p50 at {sizes[-1]:,} leads", last["api"]["p50_ms"], "ms", last["bare"]["p50_ms"])
    report.add(
        f"p99 {sizes[-1]:,} / p99 {sizes[0]:,} (API)",
        last["api"]["p99_ms"],
        "ms",
        first["api"]["p99_ms"],
        Goal("<=", 1.5, of="ratio"),
    )
    report.add(f"p99 {sizes[-1]:,} / p99 {sizes[0]:,} (bare)", last["bare"]["p99_ms"], "ms", first["bare"]["p99_ms"])
    pages = {size: max(p["buffers"] for p in measured[size]["plans"].values()) for size in sizes}
    report.add(f"pages read by a list, {sizes[-1]:,} / {sizes[0]:,}", pages[sizes[-1]], "pages", pages[sizes[0]])
    report.add(f"lists/s at {sizes[-1]:,} leads", last["api"]["requests_per_s"], "/s", last["bare"]["queries_per_s"])
    slowest = max(last["api"]["by_label"].items(), key=lambda item: item[1]["p99_ms"])
    report.notes.append(f"slowest list at {sizes[-1]:,} leads: {slowest[0]} (p99 {slowest[1]['p99_ms']:.1f} ms)")
    report.notes.append(
        "pages (buffers) the costliest list of the mix reads, by size (EXPLAIN ANALYZE BUFFERS): "
        + ", ".join(f"{size:,}: {n}" for size, n in pages.items())
        + "; scans at the largest: "
        + ", ".join(sorted({scan for p in last["plans"].values() for scan in p["scans"]}))
    )
    report.notes.append(
        "seeding (rows, index rebuild, VACUUM ANALYZE): "
        + ", ".join(f"{size:,} in {seconds:.1f} s" for size, seconds in seeding.items())
    )
    report.notes.append(f"GET /v1/leads at {sizes[-1]:,} " + describe(last["api"]["cpu_cores"]))
    report.details = {
        "sizes": list(sizes),
        "concurrency": CONCURRENCY,
        "limit": LIMIT,
        "warmup": warmup,
        "window": window,
        "seeding_s": seeding,
        "runs": {str(size): m for size, m in measured.items()},
    }
    if failures := {size: m["api"]["failures"] for size, m in measured.items() if m["api"]["failures"]}:
        report.error = f"failed requests: {failures}"
    return report
