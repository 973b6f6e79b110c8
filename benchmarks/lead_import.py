"""Benchmark 10: bulk lead import — rows registered per second by the leads worker.

A CSV of distinct companies (one row in ten repeats an earlier row's e-mail in another case, so
de-duplication links it instead of creating a lead) is uploaded through the import handler
(parsed, stored, untimed beside the figure), then the real worker process
(``python -m services.leads.worker``) registers the rows 500 per durable timer and transaction:
identifier normalisation and match keys in Python, the chunk's keys claimed in the customer-key
registry with one ``INSERT … SELECT unnest … ON CONFLICT``, ownership and the assignment rules
(eight reps of the region, locked, their loads counted once, the round-robin cursor) decided in
memory, the leads and their ``lead.created`` / ``lead.assigned`` outbox rows by ``COPY``, the
first-contact timers; the worker's relay publishes meanwhile.

The figure is rows divided by the time from the worker's start to the import's ``finished_at``;
then the benchmark waits for the outbox to drain (every event published and confirmed) and
checks the count of each event type.
Baseline, in the same run: a bare asyncpg loop inserting the same rows in batches of 500 into a
bare table with a unique e-mail index (``ON CONFLICT DO NOTHING``), one transaction per batch.
"""

from __future__ import annotations

import asyncio
import sys
import time

from benchmarks.common import Goal, Report, Server, admin_connection

ROWS = {True: 5_000, False: 100_000}
UNSENT = "SELECT count(*) FROM leads.outbox WHERE sent_at IS NULL"
PUBLISHED = """SELECT event_type, count(*) FROM leads.outbox WHERE sent_at IS NOT NULL AND event_type LIKE 'lead.%'
               GROUP BY event_type ORDER BY 1"""
REPS = 8
TIMEOUT = {True: 300.0, False: 3_600.0}


def csv_content(rows: int) -> bytes:
    lines = ["company_name,email,phone,region,industry,campaign"]
    for i in range(rows):
        if i % 10 == 9:  # a repeat of an earlier customer, written differently
            lines.append(f'"Bench Company {i - 5} Co., Ltd.",BENCH{i - 5}@Example.com,,east,pumps,bench')
        else:
            lines.append(f"Bench Company {i},bench{i}@example.com,+86 138{i:08d},east,pumps,bench")
    return ("\n".join(lines) + "\n").encode()


async def upload(content: bytes) -> str:
    from services.leads import handlers
    from services.leads.config import get_settings
    from services.leads.db import platform_tables
    from shared.auth import Principal
    from shared.db import create_engine
    from shared.service import Runtime

    get_settings.cache_clear()
    settings = get_settings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    admin = Principal(sub="bench-admin", roles=frozenset({"admin"}))
    try:
        for i in range(REPS):
            rep = handlers.PutRep(rep_id=f"bench-rep-{i}", name=f"Rep {i}", region="east", capacity=1_000_000)
            await handlers.put_rep(rep, admin, runtime.uow())
        state, _ = await handlers.start_import(content, "bench.csv", admin, runtime.uow())
        return str(state.id)
    finally:
        await runtime.engine.dispose()


async def bare_import(content: bytes) -> float:
    """Rows per second into a bare table with a unique e-mail (duplicates skipped)."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(content.decode())))
    conn = await admin_connection()
    try:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.leads; "
            "CREATE TABLE bench.leads (id bigserial PRIMARY KEY, company text, email text UNIQUE, phone text, "
            "region text, industry text, campaign text, created_at timestamptz NOT NULL DEFAULT now())"
        )
        started = time.monotonic()
        for start in range(0, len(rows), 500):
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO bench.leads (company, email, phone, region, industry, campaign) "
                    "VALUES ($1, lower($2), $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
                    [
                        (r["company_name"], r["email"], r["phone"] or None, r["region"], r["industry"], r["campaign"])
                        for r in rows[start : start + 500]
                    ],
                )
        return len(rows) / (time.monotonic() - started)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench.leads")
        await conn.close()


async def run(quick: bool) -> Report:
    rows = ROWS[quick]
    report = Report(
        "10. bulk lead import: rows registered per second by the leads worker",
        f"a CSV of {rows} rows (one in ten a repeat of an earlier customer's e-mail), {REPS} eligible reps; "
        "one worker process (timers, relay and consumers). Baseline: a bare asyncpg loop inserting the "
        "same rows in batches of 500 with a unique e-mail index.",
    )
    content = csv_content(rows)
    worker = Server("leads-worker", [sys.executable, "-m", "services.leads.worker"])
    try:
        uploaded = time.monotonic()
        import_id = await upload(content)
        upload_s = time.monotonic() - uploaded
        bare_rate = await bare_import(content)
        conn = await admin_connection()
        try:
            started = time.monotonic()
            await worker.start()
            deadline = time.monotonic() + TIMEOUT[quick]
            while (state := await conn.fetchrow("SELECT * FROM leads.lead_imports WHERE id = $1::uuid", import_id))[
                "status"
            ] != "done":
                worker.check_alive()
                if time.monotonic() > deadline:
                    report.error = f"only {state['rows_done']} of {rows} rows within {TIMEOUT[quick]:g} s"
                    break
                await asyncio.sleep(0.5)
            wall_s = time.monotonic() - started
            # Every event of the import must leave through the relay: wait for the outbox to drain.
            while report.error is None and await conn.fetchval(UNSENT):
                worker.check_alive()
                if time.monotonic() > deadline:
                    report.error = f"{await conn.fetchval(UNSENT)} events still unpublished after {TIMEOUT[quick]:g} s"
                await asyncio.sleep(0.2)
            drained_s = time.monotonic() - started
            leads = await conn.fetchval("SELECT count(*) FROM leads.leads")
            published = dict(await conn.fetch(PUBLISHED))
        finally:
            await conn.close()
    finally:
        await worker.stop()
    report.add("rows imported/s", state["rows_done"] / wall_s, "/s", bare_rate, Goal(">=", 1000))
    events = sum(published.values())
    report.add("lead events published/s (until the outbox drained)", events / drained_s, "ev/s")
    report.notes.append(
        f"{state['rows_done']} rows in {wall_s:.1f} s from worker start (start-up included): {state['created']} "
        f"created, {state['merged']} merged into an earlier customer, {state['rejected']} rejected; "
        f"{leads} leads; upload (parse and store) {upload_s:.1f} s, untimed"
    )
    report.notes.append(
        f"{events} lead events published and confirmed by the broker "
        f"({', '.join(f'{n} {t}' for t, n in published.items())}), "
        f"the outbox empty {drained_s - wall_s:.1f} s after the import finished"
    )
    expected_merged = rows // 10
    expected = {"lead.created.v1": rows, "lead.assigned.v1": rows - expected_merged}
    if report.error is None and (state["merged"] != expected_merged or state["rejected"]):
        report.error = (
            f"expected {expected_merged} merged and 0 rejected, got {state['merged']} and {state['rejected']}"
        )
    elif report.error is None and published != expected:
        report.error = f"expected {expected} events published, got {published}"
    report.details = {
        "rows": rows,
        "bare_rows_per_s": bare_rate,
        "upload_s": upload_s,
        "import_s": wall_s,
        "outbox_drained_s": drained_s,
        "published": published,
    }
    return report
