"""What every benchmark shares: environment, database, child processes, statistics, results."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import multiprocessing
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".run" / "bench"
LOG_DIR = BENCH_DIR / "logs"
# Its own database per checkout (or SALESLINE_BENCH_DB): two checkouts benchmarking at once must
# not drop each other's database.
BENCH_DB = os.environ.get("SALESLINE_BENCH_DB") or "salesline_bench_" + re.sub(r"\W", "_", ROOT.name.lower())[:40]

# Spawned (not forked) children: each starts a clean interpreter and event loop.
MP = multiprocessing.get_context("spawn")


# -- environment and database ---------------------------------------------------------------


def configure_environment(tag: str) -> None:
    """Point every settings object (ours and our children's) at the benchmark's own resources."""
    os.environ["SALESLINE_DB_NAME"] = BENCH_DB
    os.environ["SALESLINE_EXCHANGE"] = f"salesline.bench.{tag}"
    os.environ["SALESLINE_QUEUE_PREFIX"] = f"bench.{tag}."
    os.environ.setdefault("SALESLINE_ENVIRONMENT", "test")
    os.environ.setdefault("SALESLINE_LOG_LEVEL", "WARNING")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def admin_dsn(database: str) -> str:
    from shared.config import ServiceSettings

    base = ServiceSettings().database_url(admin=True, driver="postgresql")
    return base.rsplit("/", 1)[0] + "/" + database


async def recreate_database() -> None:
    """Drop and re-create the benchmark database, then bootstrap and migrate it."""
    await drop_database()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.migrate",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"migrating {BENCH_DB} failed:\n{stderr.decode()[-2000:]}")


async def drop_database() -> None:
    conn = await asyncpg.connect(admin_dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    finally:
        await conn.close()


async def admin_connection() -> asyncpg.Connection:
    return await asyncpg.connect(admin_dsn(BENCH_DB))


# -- child processes ------------------------------------------------------------------------


def run_async(coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
    """Entry point of a spawned child: run one coroutine on uvloop."""
    import uvloop

    return uvloop.run(coro_fn(*args))


def spawn(coro_fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str) -> multiprocessing.Process:
    """Start ``coro_fn(*args)`` in a child Python process (its own core, GIL and event loop)."""
    process = MP.Process(target=run_async, args=(coro_fn, *args), name=name, daemon=True)
    process.start()
    return process


async def wait_until(predicate: Callable[[], bool], *, within: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` (it reads another process's state: nothing to await) until it holds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def join(process: multiprocessing.Process, within: float = 30.0) -> None:
    """Wait for a child to exit; it must exit cleanly."""
    try:
        await wait_until(lambda: not process.is_alive(), within=within, what=f"{process.name} to stop", interval=0.05)
    finally:
        if process.is_alive():
            process.terminate()
            process.join(5)
    if process.exitcode != 0:
        raise RuntimeError(f"{process.name} exited with status {process.exitcode}")


async def receive(results: Any, process: multiprocessing.Process, within: float = 60.0) -> Any:
    """The next item a child puts on its ``results`` queue; fails if the child dies first."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(queue.Empty):
            return await asyncio.to_thread(results.get, True, 0.2)
        if not process.is_alive():
            with contextlib.suppress(queue.Empty):
                return await asyncio.to_thread(results.get, True, 1.0)
            raise RuntimeError(f"{process.name} exited with status {process.exitcode} before reporting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} reported nothing within {within:g} s")


def watch_stop(stop: Any) -> asyncio.Event:
    """An asyncio.Event that is set once the multiprocessing.Event ``stop`` is."""
    stopping = asyncio.Event()

    async def poll() -> None:
        await wait_until(stop.is_set, within=math.inf, what="the stop signal")
        stopping.set()

    task = asyncio.get_running_loop().create_task(poll())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return stopping


_BACKGROUND: set[asyncio.Task] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real service process (uvicorn or a worker) in its own session, logging to .run/bench/logs."""

    def __init__(self, name: str, argv: Sequence[str], *, port: int | None = None) -> None:
        self.name, self.argv, self.port = name, list(argv), port
        self.process: asyncio.subprocess.Process | None = None

    @classmethod
    def uvicorn(cls, name: str, factory: str, *, workers: int = 1) -> Server:
        port = free_port()
        # What make run and the image start: uvicorn, its supervisor dealing connections to the workers in turn.
        argv = [sys.executable, "-m", "shared.serve", "--factory", factory, "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        return cls(name, argv, port=port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not started"
        return self.process.pid

    def _open_log(self) -> IO[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        return self.log.open("wb")

    async def start(self, *, ready_path: str = "/healthz", within: float = 30.0) -> None:
        """Start it; an HTTP server must answer 200 on ``ready_path`` within ``within`` seconds."""
        with self._open_log() as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.port is None:
            return
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + ready_path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} was not ready within {within:g} s; see {self.log}")
                await asyncio.sleep(0.1)

    async def stop(self, within: float = 15.0) -> None:
        """SIGTERM to the process group we started (uvicorn's workers with it); SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def check_alive(self) -> None:
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError(f"{self.name} is not running; see {self.log}")


# -- pacing and statistics ------------------------------------------------------------------


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` (monotonic); yields to the loop even when already past it."""
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def paced(rate: float, duration: float, fire: Callable[[int], Coroutine[Any, Any, None]]) -> int:
    """Open loop: start ``fire(k)`` at ``k / rate`` seconds for ``duration`` seconds, however long
    earlier calls take (a late start is not skipped, it runs at once); returns how many it started."""
    start = time.monotonic()
    count = int(rate * duration)
    tasks = []
    for k in range(count):
        await sleep_until(start + k / rate)
        tasks.append(asyncio.create_task(fire(k)))
    await asyncio.gather(*tasks)
    return count


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of unsorted ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds."""
    return {
        "count": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds, default=math.nan) * 1000,
    }


# -- one event in, its effect polled through an API (benchmarks 2, 5 and 9) -------------------

RATE = 50.0  # events per second for the latency figures
POLL_INTERVAL = 0.01
FIRST_POLL_AFTER = 0.005
TIMEOUT = 30.0
POLLED_AGAINST_HOP = (
    f"poll every {POLL_INTERVAL * 1000:g} ms. Baseline: one bare aio-pika hop (confirms → consume) at {RATE:g}/s"
)

# The customer, owner and goods these benchmarks send through the services.
BENCH_REP = "bench-rep"
CONTACT_NAME, CONTACT_EMAIL = "Han Meimei", "han@example.com"
DELIVERY_ADDRESS = "1 Century Ave, Shanghai"


@dataclass(frozen=True)
class Goods:
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    warranty_months: int = 0

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price


GOODS = (
    Goods("PUMP-1", "Pump", Decimal(2), Decimal("1500.00"), warranty_months=12),
    Goods("SVC-1", "Install", Decimal(1), Decimal("300.00")),
)
GOODS_TOTAL = sum((goods.amount for goods in GOODS), Decimal(0))


def contact() -> Any:
    from shared.events import ContactInfo

    return ContactInfo(name=CONTACT_NAME, email=CONTACT_EMAIL)


async def commit_events(runtime: Any, events: Sequence[tuple[Any, str]]) -> None:
    """(event, subject) pairs committed into the service's outbox in one unit of work, as the
    service does when its change happens (the events alone, no rows of its own)."""
    uow = runtime.uow()
    async with uow:
        for event, subject in events:
            uow.emit(event, subject=subject)
        await uow.commit()


def service_runtime(service: str) -> Any:
    """A service's runtime (settings, engine, unit of work factory), as the driver's own."""
    from shared.db import create_engine
    from shared.service import Runtime

    settings = importlib.import_module(f"services.{service}.config").get_settings()
    tables = importlib.import_module(f"services.{service}.db").platform_tables
    return Runtime(settings, create_engine(settings), tables)


def latency_window(quick: bool) -> tuple[float, float]:
    """Warm-up and measured seconds of a paced latency run."""
    return (1.0, 5.0) if quick else (3.0, 20.0)


def processes(servers: Sequence[Server]) -> dict[str, int]:
    """What a CpuMeter watches: this driver and the servers."""
    return {"driver (this process)": os.getpid(), **{server.name: server.pid for server in servers}}


async def wait_for_consumer(queue: str, within: float = 30.0) -> None:
    """Until a consumer is attached to ``queue`` (a worker that started is not yet consuming)."""
    from benchmarks.broker import QueueProbe
    from shared.config import ServiceSettings

    deadline = time.monotonic() + within
    async with QueueProbe(ServiceSettings()) as probe:
        while (await probe.depth(queue))[1] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no consumer on {queue} after {within:g} s")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(servers: Sequence[Server], consumer_queue: str) -> AsyncIterator[None]:
    """The servers started and ``consumer_queue`` consumed; they must still be alive at the end."""
    try:
        for server in servers:
            await server.start()
        await wait_for_consumer(consumer_queue)
        yield
        for server in servers:
            server.check_alive()
    finally:
        for server in reversed(servers):
            await server.stop()


async def seconds_until_listed(pool: Any, path: str, auth: dict[str, str], since: float) -> float:
    """Poll the list ``path`` until it lists something: the seconds from ``since`` (monotonic)."""
    import json

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


@dataclass
class PacedLatencies:
    primed: float  # the first event's, which primed the path (connections, prepared statements)
    latencies: list[float | None]  # one per paced event, warm-up included
    cores: dict[str, float]  # CPU use of each process during the paced run
    warmup: float
    window: float


async def paced_latencies(
    servers: Sequence[Server],
    api: Server,
    token: str,
    watch: Callable[[Any, dict[str, str]], Awaitable[float]],
    *,
    warmup: float,
    window: float,
) -> PacedLatencies:
    """``watch(pool, auth)`` sends one event and returns the seconds until ``api`` lists its effect:
    once to prime the path, then at ``RATE`` for ``warmup + window`` seconds, CPU metered. The
    polls go through a few keep-alive connections (see :mod:`benchmarks.http11` for why not httpx)."""
    from benchmarks.cpu import CpuMeter
    from benchmarks.http11 import Http11Pool

    pool = Http11Pool("127.0.0.1", api.port, size=8)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        primed = await watch(pool, auth)
        latencies: list[float | None] = [None] * int(RATE * (warmup + window))

        async def fire(k: int) -> None:
            latencies[k] = await watch(pool, auth)

        meter = CpuMeter(processes(servers))
        meter.start()
        await paced(RATE, warmup + window, fire)
        cores = meter.stop()
    finally:
        pool.close()
    return PacedLatencies(primed, latencies, cores, warmup, window)


async def report_against_bare_hop(report: Report, figure_name: str, noun: str, run: PacedLatencies) -> Report:
    """p50/p99 of the paced run after its warm-up, beside one bare broker hop at the same rate."""
    from benchmarks.cpu import describe
    from benchmarks.pipeline import bare_hop_latency

    measured = [v for v in run.latencies[int(RATE * run.warmup) :] if v is not None]
    figure = latency_summary(measured)
    hop = await bare_hop_latency(RATE, run.warmup, run.window)
    report.add(f"p50 {figure_name} at {RATE:g}/s", figure["p50_ms"], "ms", hop["p50_ms"])
    report.add(f"p99 {figure_name} at {RATE:g}/s", figure["p99_ms"], "ms", hop["p99_ms"])
    report.notes.append(
        f"{figure['count']} {noun} measured (max {figure['max_ms']:.1f} ms); the first, priming the path, "
        f"took {run.primed * 1000:.0f} ms; resolution: one poll interval ({POLL_INTERVAL * 1000:g} ms)"
    )
    report.notes.append("during the run " + describe(run.cores))
    report.details = {"rate": RATE, "warmup": run.warmup, "window": run.window, "figure": figure, "baseline": hop}
    return report


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """``value`` (or ``ratio`` to the baseline) must be ``>=`` / ``<=`` ``threshold``."""

    op: str
    threshold: float
    of: str = "value"

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = value if self.of == "value" else ratio
        if subject is None or math.isnan(subject):
            return None
        return subject >= self.threshold if self.op == ">=" else subject <= self.threshold

    def __str__(self) -> str:
        symbol = "≥" if self.op == ">=" else "≤"
        return f"{symbol} {self.threshold:g}" + (" × baseline" if self.of == "ratio" else "")


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    goal: Goal | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or math.isnan(self.baseline) or math.isnan(self.value):
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        met = self.goal.met(self.value, self.ratio)
        return "n/a" if met is None else ("PASS" if met else "MISS")

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": _finite(self.value),
            "unit": self.unit,
            "baseline": _finite(self.baseline),
            "ratio": _finite(self.ratio),
            "goal": str(self.goal) if self.goal else None,
            "result": self.verdict or None,
        }


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)


@dataclass
class Report:
    """One benchmark's table, plus what it observed on the side (backlogs, errors, setup)."""

    title: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def add(self, *args: Any, **kwargs: Any) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [row.as_json() for row in self.rows]
        return data

    def render(self) -> str:
        header = ("figure", "measured", "baseline", "ratio", "goal", "result")
        body = [
            (
                row.figure,
                _fmt(row.value, row.unit),
                _fmt(row.baseline, row.unit) if row.baseline is not None else "—",
                f"{row.ratio:.2f}×" if row.ratio is not None else "—",
                str(row.goal) if row.goal else "—",
                row.verdict or "—",
            )
            for row in self.rows
        ]
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body, strict=True)]
        line = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        out = [f"== {self.title}", f"   {self.setup}"]
        out.append("   " + line.format(*header))
        out.append("   " + "  ".join("-" * w for w in widths))
        out += ["   " + line.format(*cells) for cells in body]
        out += [f"   · {note}" for note in self.notes]
        if self.error:
            out.append(f"   ERROR: {self.error}")
        return "\n".join(out)


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} {unit}"
