"""Benchmark 8: SLA timer throughput — timers fired per second by the service desk worker.

Tickets are opened beforehand (untimed, through the service desk handler, no agent on duty so
none is assigned) with an around-the-clock calendar and one- and two-second P1 targets, so each
has four durable timers (warning and breach of the first-response and resolution clocks) that
are all due before the worker starts. Then the real worker process
(``python -m services.service_desk.worker``) starts and fires them: per timer, the ticket is
loaded and locked, its clock re-read in business time, the warning and breach recorded once
(``ticket.sla_warned`` / ``ticket.sla_breached`` in the outbox, an escalation row each), the
ticket saved, the timer marked fired, batches of ``timer_batch_size`` per transaction. The
worker's relay publishes the same backlog meanwhile, as it would after downtime.

The figure is the timers fired divided by the span from the first to the last ``fired_at``.
Baseline, in the same run: a bare asyncpg loop over a bare table of as many due timers, claiming
the same batches with ``FOR UPDATE SKIP LOCKED`` and marking each fired, with no handler.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from benchmarks.common import Report, Server, admin_connection

TICKETS = {True: 500, False: 2_500}
ENTRY_CONCURRENCY = 8
TIMEOUT = 300.0
SETTINGS = {
    "SALESLINE_BUSINESS_OPENS": "00:00",
    "SALESLINE_BUSINESS_CLOSES": "23:59:59.999999",
    "SALESLINE_BUSINESS_WEEKDAYS": "[0, 1, 2, 3, 4, 5, 6]",
    "SALESLINE_BUSINESS_HOLIDAYS_COUNTRY": "",
    "SALESLINE_SLA_FIRST_RESPONSE_HOURS": json.dumps({"P1": 1 / 3600, "P2": 1, "P3": 24, "P4": 48}),
    "SALESLINE_SLA_RESOLUTION_HOURS": json.dumps({"P1": 2 / 3600, "P2": 24, "P3": 72, "P4": 120}),
}
BARE_TABLE = """
    CREATE SCHEMA IF NOT EXISTS bench;
    DROP TABLE IF EXISTS bench.timers;
    CREATE TABLE bench.timers (
        id bigserial PRIMARY KEY, kind text NOT NULL, key text NOT NULL, payload jsonb NOT NULL DEFAULT '{}',
        due_at timestamptz NOT NULL, fired_at timestamptz);
    CREATE INDEX ON bench.timers (due_at) WHERE fired_at IS NULL;
"""


async def open_tickets(count: int) -> None:
    """P1 tickets in a group nobody works in (untimed): four due timers each."""
    from services.service_desk import handlers
    from services.service_desk.config import get_settings
    from services.service_desk.db import platform_tables
    from services.service_desk.domain import Channel, Priority, TicketType
    from shared.db import create_engine
    from shared.service import Runtime

    get_settings.cache_clear()
    settings = get_settings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    command = handlers.OpenTicket(
        subject="Line down",
        description="",
        channel=Channel.PHONE,
        type=TicketType.REPAIR,
        priority=Priority.P1,
        customer_id="bench-customer",
        customer_name="Bench Customer Ltd.",
        group="bench-sla",
    )

    async def open_some(share: int) -> None:
        for _ in range(share):
            await handlers.open_ticket(command, runtime.uow())

    try:
        shares = [count // ENTRY_CONCURRENCY + (k < count % ENTRY_CONCURRENCY) for k in range(ENTRY_CONCURRENCY)]
        await asyncio.gather(*(open_some(share) for share in shares))
    finally:
        await runtime.engine.dispose()


async def bare_timers(count: int, batch: int) -> float:
    """Timers claimed and marked fired per second by a bare loop (no handler)."""
    conn = await admin_connection()
    try:
        await conn.execute(BARE_TABLE)
        await conn.execute(
            "INSERT INTO bench.timers (kind, key, due_at) "
            "SELECT 'sla.breach', g::text, now() - interval '1 minute' FROM generate_series(1, $1) g",
            count,
        )
        fired = 0
        started = time.monotonic()
        while fired < count:
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, kind, key, payload FROM bench.timers WHERE fired_at IS NULL AND due_at <= now() "
                    "ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                    batch,
                )
                for row in rows:
                    await conn.execute("UPDATE bench.timers SET fired_at = now() WHERE id = $1", row["id"])
            fired += len(rows)
        return count / (time.monotonic() - started)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench.timers")
        await conn.close()


async def run(quick: bool) -> Report:
    from services.service_desk.config import get_settings

    tickets = TICKETS[quick]
    timers = tickets * 4
    report = Report(
        "8. SLA timer throughput: timers fired per second by the service desk worker",
        f"{tickets} P1 tickets opened beforehand (untimed), {timers} SLA timers all due when the worker starts "
        f"(around-the-clock calendar, 1 s / 2 s targets); one worker process (timers, relay and consumers). "
        "Baseline: a bare asyncpg loop claiming and marking as many due rows in the same batches.",
    )
    saved = {name: os.environ.get(name) for name in SETTINGS}
    os.environ.update(SETTINGS)
    worker = Server("service-desk-worker", [sys.executable, "-m", "services.service_desk.worker"])
    try:
        entered = time.monotonic()
        await open_tickets(tickets)
        entry_s = time.monotonic() - entered
        batch = get_settings().timer_batch_size
        bare_rate = await bare_timers(timers, batch)
        conn = await admin_connection()
        try:
            await asyncio.sleep(2.5)  # every target passed
            worker_started = time.monotonic()
            await worker.start()
            deadline = time.monotonic() + TIMEOUT
            while (
                fired := await conn.fetchval("SELECT count(*) FROM service_desk.timers WHERE fired_at IS NOT NULL")
            ) < timers:
                worker.check_alive()
                if time.monotonic() > deadline:
                    report.error = f"only {fired} of {timers} timers fired within {TIMEOUT:g} s"
                    break
                await asyncio.sleep(0.2)
            wall_s = time.monotonic() - worker_started
            span = await conn.fetchrow(
                "SELECT count(*) AS n, extract(epoch FROM max(fired_at) - min(fired_at)) AS s, "
                "max(attempts) AS retries FROM service_desk.timers WHERE fired_at IS NOT NULL"
            )
            breaches = await conn.fetchval(
                "SELECT count(*) FROM service_desk.outbox WHERE event_type = 'ticket.sla_breached.v1'"
            )
            escalations = await conn.fetchval("SELECT count(*) FROM service_desk.escalations")
        finally:
            await conn.close()
    finally:
        await worker.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()

    rate = span["n"] / float(span["s"]) if span["s"] else float("nan")
    report.add("timers fired/s", rate, "/s", bare_rate)
    report.notes.append(
        f"{span['n']} timers fired in {float(span['s'] or 0):.1f} s (first to last fired_at; {wall_s:.1f} s from "
        f"worker start to all fired, start-up included); {breaches} ticket.sla_breached events, {escalations} "
        f"escalations (expected {tickets * 2} and {timers})"
    )
    report.notes.append(f"{tickets} tickets opened beforehand in {entry_s:.0f} s (untimed)")
    if report.error is None and (breaches != tickets * 2 or escalations != timers):
        report.error = f"expected {tickets * 2} breaches and {timers} escalations, got {breaches} and {escalations}"
    if report.error is None and span["retries"]:
        report.notes.append(f"some timers were retried (max attempts {span['retries']}): fired before their clock")
    report.details = {"tickets": tickets, "timers": timers, "batch": batch, "bare_timers_per_s": bare_rate}
    return report
