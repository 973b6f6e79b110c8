"""The webhooks worker: the shared worker (consumer of every event, outbox relay, timers) plus the
webhook dispatcher, in one process: ``python -m services.webhooks.worker``.

``shared.service.run_worker`` has no place for a service's own component, so this module runs
it beside the dispatcher under the same stop signal (``worker_main``'s logging, signals and
metrics, repeated here).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from services.webhooks.clock import Clock
from services.webhooks.config import WebhooksSettings, get_settings
from services.webhooks.consumers import SUBSCRIPTIONS, TIMERS, ensure_purge_timer
from services.webhooks.db import platform_tables
from services.webhooks.dispatcher import Dispatcher
from shared.db import create_engine
from shared.service import run_worker
from shared.uow import UnitOfWork

log = logging.getLogger("salesline.worker")


async def run_webhooks_worker(
    settings: WebhooksSettings, stopping: asyncio.Event, *, clock: Clock | None = None
) -> None:
    engine = create_engine(settings)
    try:
        try:
            uow = UnitOfWork(engine, platform_tables, settings.source)
            async with uow:
                await ensure_purge_timer(uow)
                await uow.commit()
        except Exception as exc:  # noqa: BLE001 - the next start arms it
            log.warning("could not arm the retention purge timer: %s", exc)
        dispatcher = Dispatcher(settings, engine, platform_tables, clock=clock)
        await asyncio.gather(
            run_worker(settings, platform_tables, subscriptions=SUBSCRIPTIONS, timers=TIMERS, stopping=stopping),
            dispatcher.run(stopping),
        )
    finally:
        await engine.dispose()


def main() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s {settings.service_name}-worker %(name)s: %(message)s",
    )

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        if settings.worker_metrics_port:
            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        log.info("worker starting: %d consumers, timers %s, webhook dispatcher", len(SUBSCRIPTIONS), sorted(TIMERS))
        await run_webhooks_worker(settings, stopping)
        log.info("worker stopped")

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


if __name__ == "__main__":
    main()
