"""The webhooks metrics move with what the dispatcher does: attempts by result, and the sampled
gauges of pending deliveries, failing and disabled subscriptions."""

from __future__ import annotations

import httpx

from services.webhooks.clock import ManualClock
from services.webhooks.config import WebhooksSettings
from services.webhooks.db import platform_tables
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.worker import GAUGES
from shared.backlog import BacklogSampler
from tests.test_metrics import local, value
from tests.webhooks.conftest import consume, order_created, subscribe
from tests.webhooks.receivers import Reply


async def test_failures_and_disabling_move_the_webhook_metrics(
    api: httpx.AsyncClient, receivers, engine, dispatcher: Dispatcher, clock: ManualClock, settings: WebhooksSettings
) -> None:
    sampler = BacklogSampler(settings, engine, platform_tables, extra=GAUGES)

    async def gauges() -> tuple[float | None, ...]:
        await sampler.sample_database()
        scraped = local()
        return tuple(
            value(scraped, f"salesline_webhook_{name}")
            for name in ("deliveries_pending", "subscriptions_failing", "subscriptions_disabled")
        )

    def attempts(result: str) -> float:
        return value(local(), "salesline_webhook_attempts_total", result=result) or 0

    receiver = receivers().then(Reply(500, b"down"), Reply(410, b"gone"))
    await subscribe(api, receiver.url, event_types=["order.*"])
    await consume(engine, order_created())
    assert await gauges() == (1, 0, 0)

    before = attempts("http_status")
    assert await dispatcher.run_once() == 1  # 500: retried later, the endpoint is failing
    assert attempts("http_status") == before + 1
    assert await gauges() == (1, 1, 0)

    clock.advance(settings.retry_schedule_seconds[1] * 2)
    assert await dispatcher.run_once() == 1  # 410: the endpoint is gone, the subscription disabled
    assert attempts("http_status") == before + 2
    assert await gauges() == (0, 0, 1)
