"""Run the benchmarks: ``PYTHONPATH=. python -m benchmarks [--quick] [--only 1,2,3]``.

Needs the test instance's environment (``make bench`` exports it; by hand:
``eval "$(RUN_DIR=.run/test SALESLINE_DB_PORT=56432 SALESLINE_AMQP_PORT=56672 bash scripts/infra.sh env)"``).

It uses its own database (``salesline_bench_<checkout directory>``, or ``SALESLINE_BENCH_DB``;
dropped, re-created and migrated at the start, dropped at the end) and its own exchange and
queue prefix (deleted at the end), prints one table per benchmark (figure, bare baseline measured
beside it in the same run, ratio, goal, PASS/MISS) and writes them to ``.run/bench/results.json``.
A MISS is reported, not failed: the exit status
is 1 only when a benchmark could not run (or lost or duplicated events, or had failed requests).

1. event pipeline: outbox → relay → broker → consumer with inbox, vs bare aio-pika
   (``benchmarks/pipeline.py``);
2. contract signed → order visible through the orders API, vs one bare broker hop
   (``benchmarks/contract_to_order.py``);
3. HTTP write path ``POST /v1/contracts`` vs a bare FastAPI + asyncpg insert
   (``benchmarks/http_write.py``);
4. webhooks: deliveries/s to a local receiver and event published → webhook received, vs the
   same receiver hit by a bare POST loop and one bare broker hop (``benchmarks/webhooks.py``);
5. order delivered → survey listed by the service desk API, vs one bare broker hop
   (``benchmarks/delivery_to_survey.py``);
6. order approvals per second through ``POST /v1/orders/{id}/approve`` (sales manager, then
   finance) vs a bare FastAPI + asyncpg ``UPDATE`` (``benchmarks/approvals.py``);
7. tickets created per second through ``POST /v1/tickets`` (auto-assigned, SLA timers) vs a
   bare FastAPI + asyncpg insert (``benchmarks/tickets.py``);
8. SLA timer throughput: timers fired per second by the service desk worker vs a bare
   ``SKIP LOCKED`` claim-and-mark loop (``benchmarks/sla_timers.py``);
9. opportunity won → contract draft listed by the contracts API, vs one bare broker hop, and
   contracts drafted per second vs bare aio-pika saturation (``benchmarks/won_to_draft.py``);
10. bulk lead import: CSV rows registered per second by the leads worker (5,000 quick, 100,000
   full, one in ten a duplicate) vs bare batched inserts (``benchmarks/lead_import.py``);
11. leads created per second through ``POST /v1/leads`` (a rep, a new customer each time) vs a
   bare FastAPI + asyncpg insert (``benchmarks/lead_create.py``);
12. the lead list (``GET /v1/leads``: rep, manager and director scopes, filters, first and deep
   pages) at 10,000, 100,000 and 1,000,000 seeded leads (100,000 with ``--quick``): p99 at each
   size and p99(largest) / p99(10,000), vs the same keyset query by raw asyncpg
   (``benchmarks/lead_list.py``).

``--quick`` is a smoke run of about a minute (short windows); the full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from benchmarks import common

BENCHMARKS: dict[str, tuple[str, str]] = {
    "1": ("benchmarks.pipeline", "event pipeline"),
    "2": ("benchmarks.contract_to_order", "contract signed → order visible"),
    "3": ("benchmarks.http_write", "HTTP write path"),
    "4": ("benchmarks.webhooks", "webhooks: published → received"),
    "5": ("benchmarks.delivery_to_survey", "order delivered → survey created"),
    "6": ("benchmarks.approvals", "order approvals per second"),
    "7": ("benchmarks.tickets", "tickets created per second"),
    "8": ("benchmarks.sla_timers", "SLA timer throughput"),
    "9": ("benchmarks.won_to_draft", "opportunity won → contract draft"),
    "10": ("benchmarks.lead_import", "bulk lead import"),
    "11": ("benchmarks.lead_create", "leads created per second"),
    "12": ("benchmarks.lead_list", "lead list over 1,000,000 rows"),
}


async def main(quick: bool, only: list[str]) -> int:
    from benchmarks.broker import delete_declared, remember_service_queues
    from shared.config import ServiceSettings

    started = time.monotonic()
    load = os.getloadavg()
    print(
        f"salesline benchmarks ({'quick' if quick else 'full'} run), database {common.BENCH_DB}; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(work by others on this machine slows every figure, the baselines too)",
        flush=True,
    )
    reports = []
    failed = False
    try:
        remember_service_queues()
        await common.recreate_database()
        for key in only:
            module_name, title = BENCHMARKS[key]
            print(f"\nrunning {key}. {title} ...", flush=True)
            report = await _run(module_name, quick)
            failed |= report.error is not None
            reports.append(report)
            print("\n" + report.render(), flush=True)
    finally:
        try:
            await delete_declared(ServiceSettings())
            await common.drop_database()
        except Exception as exc:  # noqa: BLE001 - the figures stand; say what was left behind
            print(
                f"benchmarks: cleanup failed ({type(exc).__name__}: {exc}); "
                f"queues prefixed {os.environ['SALESLINE_QUEUE_PREFIX']!r} may remain",
                file=sys.stderr,
            )
            failed = True
    _write_results(reports, quick, time.monotonic() - started, load)
    print(f"\nresults: {common.BENCH_DIR / 'results.json'} ({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


async def _run(module_name: str, quick: bool):
    import importlib

    module = importlib.import_module(module_name)
    run: Callable[[bool], Awaitable[common.Report]] = module.run
    try:
        return await run(quick)
    except Exception as exc:  # noqa: BLE001 - reported in the table and the exit status
        traceback.print_exc()
        return common.Report(module.__doc__.split("\n", 1)[0], "", error=f"{type(exc).__name__}: {exc}")


def _write_results(reports: list[common.Report], quick: bool, elapsed: float, load: tuple[float, ...]) -> None:
    common.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    data = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "elapsed_s": round(elapsed, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load,
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "benchmarks": [report.as_json() for report in reports],
    }
    (common.BENCH_DIR / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmark numbers")
    args = parser.parse_args(argv)
    only = [key.strip() for key in args.only.split(",") if key.strip()]
    if unknown := [key for key in only if key not in BENCHMARKS]:
        parser.error(f"unknown benchmarks: {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    if "SALESLINE_AMQP_URL" not in os.environ or "SALESLINE_DB_PORT" not in os.environ:
        print("benchmarks: export the test instance's environment first (see `make bench`)", file=sys.stderr)
        return 2
    common.configure_environment(uuid.uuid4().hex[:8])
    logging.basicConfig(level=os.environ["SALESLINE_LOG_LEVEL"])

    import uvloop

    return uvloop.run(main(args.quick, only))


if __name__ == "__main__":
    sys.exit(cli())
