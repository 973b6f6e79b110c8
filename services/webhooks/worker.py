"""The webhooks worker: the shared worker (consumer of every event, outbox relay, timers) plus the
webhook dispatcher, in one process under one stop signal: ``python -m services.webhooks.worker``.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge

from services.webhooks.clock import Clock
from services.webhooks.config import WebhooksSettings, get_settings
from services.webhooks.consumers import SUBSCRIPTIONS, TIMERS, ensure_purge_timer
from services.webhooks.db import platform_tables
from services.webhooks.dispatcher import Dispatcher
from shared.backlog import SqlGauge
from shared.db import create_engine
from shared.service import run_worker, worker_process
from shared.uow import UnitOfWork

log = logging.getLogger("salesline.worker")

# Sampled with the shared backlog gauges (partial index on pending deliveries; few subscriptions).
GAUGES = [
    SqlGauge(
        Gauge("salesline_webhook_deliveries_pending", "Webhook deliveries waiting to be sent or retried"),
        "SELECT count(*) FROM webhooks.deliveries WHERE status = 'pending'",
    ),
    SqlGauge(
        Gauge("salesline_webhook_subscriptions_failing", "Active webhook subscriptions whose deliveries are failing"),
        "SELECT count(*) FROM webhooks.subscriptions WHERE failing_since IS NOT NULL AND active",
    ),
    SqlGauge(
        Gauge("salesline_webhook_subscriptions_disabled", "Webhook subscriptions the service disabled"),
        "SELECT count(*) FROM webhooks.subscriptions WHERE disabled_at IS NOT NULL AND NOT active",
    ),
]


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
            run_worker(
                settings, platform_tables, subscriptions=SUBSCRIPTIONS, timers=TIMERS, stopping=stopping, gauges=GAUGES
            ),
            dispatcher.run(stopping),
        )
    finally:
        await engine.dispose()


def main() -> None:
    settings = get_settings()
    worker_process(settings, lambda stopping: run_webhooks_worker(settings, stopping))


if __name__ == "__main__":
    main()
