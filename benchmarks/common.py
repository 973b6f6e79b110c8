"""What every benchmark shares: environment, database, child processes, statistics, results."""

from __future__ import annotations

import asyncio
import contextlib
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
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
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
        argv = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port)]
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
