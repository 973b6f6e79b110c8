"""What every service's ``main.py`` and ``worker.py`` build on: the engine, the unit of work
factory, the API lifespan and the worker process (consumers, outbox relay, timers)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import telemetry
from shared.backlog import BacklogSampler, SqlGauge
from shared.concurrency import if_match_version
from shared.config import ServiceSettings
from shared.context import install_log_record_context
from shared.db import PlatformTables, create_engine
from shared.idempotency import purge_idempotency_keys
from shared.inbox import ConsumerRunner, Subscription
from shared.outbox import OutboxRelay
from shared.timers import TimerHandler, TimerPoller
from shared.uow import UnitOfWork
from shared.wakeup import close_wakers

log = logging.getLogger("salesline.worker")


@dataclass
class Runtime:
    settings: ServiceSettings
    engine: AsyncEngine
    tables: PlatformTables

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self.tables, self.settings.source)


def settle_heap() -> None:
    """Leave what startup built (modules, models, routes) out of garbage collection, and collect
    less often. Under load, full collections over it paused a process's event loop for tens of
    milliseconds, every request in flight waiting (measured with benchmark 3's server)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def api_lifespan(settings: ServiceSettings, tables: PlatformTables):
    """The FastAPI lifespan: one engine per process, kept on ``app.state``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.tables = tables
        app.state.runtime = Runtime(settings, engine, tables)
        settle_heap()
        try:
            yield
        finally:
            gc.unfreeze()  # an app stopped in a longer-lived process (tests) leaves no uncollectable garbage
            await close_wakers(engine)
            await engine.dispose()

    return lifespan


async def get_uow(request: Request) -> UnitOfWork:
    """FastAPI dependency: a fresh (not yet opened) unit of work; the handler opens and commits it.

    Async on purpose: FastAPI runs a sync dependency in a worker thread on every request.
    """
    return request.app.state.runtime.uow()


def expected_version(request: Request) -> int | None:
    """The aggregate version the client claims in ``If-Match`` (None when absent or ``*``).

    A tag that is not one of our versions can never match: it becomes -1, hence a 412.
    """
    value = if_match_version(request)
    if value is None:
        return None
    return int(value) if value.isdigit() and len(value) < 10 else -1


async def run_worker(
    settings: ServiceSettings,
    tables: PlatformTables,
    *,
    subscriptions: Sequence[Subscription] = (),
    timers: Mapping[str, TimerHandler] | None = None,
    stopping: asyncio.Event | None = None,
    gauges: Sequence[SqlGauge] = (),
) -> None:
    """Run the consumers, the outbox relay, the timer poller and the backlog gauges until ``stopping`` is set."""
    stopping = stopping or asyncio.Event()
    runtime = Runtime(settings, create_engine(settings), tables)
    settle_heap()
    components = [
        OutboxRelay(settings, runtime.engine, tables).run(stopping),
        ConsumerRunner(settings, subscriptions, runtime.uow).run(stopping),
        TimerPoller(settings, timers or {}, runtime.uow).run(stopping),
        BacklogSampler(settings, runtime.engine, tables, subscriptions, gauges).run(stopping),
        _housekeeping(runtime, stopping),
    ]
    try:
        await asyncio.gather(*components)
    finally:
        gc.unfreeze()
        await close_wakers(runtime.engine)
        await runtime.engine.dispose()


async def _housekeeping(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Hourly: forget idempotency keys older than their 24 h replay window."""
    while not stopping.is_set():
        try:
            await purge_idempotency_keys(runtime.engine, runtime.tables.idempotency_keys)
        except Exception as exc:  # noqa: BLE001 - housekeeping; try again next time
            log.warning("idempotency key purge failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=3600)


def worker_process(settings: ServiceSettings, body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``body(stopping)`` as a worker process: logging, metrics, SIGTERM/SIGINT set ``stopping``."""
    install_log_record_context()
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s {settings.service_name}-worker trace=%(trace_id)s %(name)s: %(message)s",
    )

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        if settings.worker_metrics_port:
            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        log.info("worker starting")
        await body(stopping)
        log.info("worker stopped")

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    finally:
        telemetry.shutdown()  # export the spans still buffered (no-op when export is off)


def worker_main(
    settings: ServiceSettings,
    tables: PlatformTables,
    *,
    subscriptions: Sequence[Subscription] = (),
    timers: Mapping[str, TimerHandler] | None = None,
) -> None:
    """Entry point of ``python -m services.<name>.worker``: consumers, relay and timers."""
    worker_process(
        settings,
        lambda stopping: run_worker(settings, tables, subscriptions=subscriptions, timers=timers, stopping=stopping),
    )
