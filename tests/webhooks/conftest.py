"""Webhooks test configuration: local receivers on 127.0.0.1 are allow-listed (the only way the
address rules let them through), plain http is allowed, and timeouts and leases are short.

Tests that need the rules without the allow-list build their settings with
``strict(settings)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

os.environ.setdefault("SALESLINE_WEBHOOKS_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
os.environ.setdefault("SALESLINE_WEBHOOKS_ALLOW_HTTP", "true")
os.environ.setdefault("SALESLINE_WEBHOOKS_DELIVERY_TIMEOUT_SECONDS", "3")
os.environ.setdefault("SALESLINE_WEBHOOKS_DELIVERY_LEASE_SECONDS", "5")
os.environ.setdefault("SALESLINE_WEBHOOKS_DISPATCHER_POLL_SECONDS", "0.1")

from services.webhooks.clock import ManualClock
from services.webhooks.config import WebhooksSettings
from services.webhooks.consumers import on_any_event
from services.webhooks.db import platform_tables
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.domain import RetryPolicy
from shared.db import create_engine
from shared.events import CloudEvent, OrderCreated, make_envelope
from shared.uow import UnitOfWork
from tests.conftest import auth, settings_for, wait_until
from tests.webhooks.receivers import Receiver

ERP = auth("erp-1", "integration")
OTHER_ERP = auth("erp-2", "integration")
ADMIN = auth("ops-1", "admin")


def strict(settings: WebhooksSettings, **changes: object) -> WebhooksSettings:
    """The same settings without the test allow-list (every non-public address refused)."""
    return settings.model_copy(update={"allowed_networks": [], **changes})


def order_created(customer: str = "cust-1") -> CloudEvent:
    return make_envelope(
        OrderCreated(
            order_id=uuid.uuid4(),
            order_number="SO-2026-000001",
            customer_id=customer,
            customer_name=f"{customer} Ltd.",
            owner_id="rep-1",
            currency="CNY",
            total_amount="3300.00",
        ),
        source="/salesline/orders",
        subject=str(uuid.uuid4()),
    )


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kwargs: object) -> Receiver:
        receiver = Receiver(**kwargs)  # type: ignore[arg-type]
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def settings(bus: str) -> WebhooksSettings:
    return settings_for("webhooks")  # type: ignore[return-value]


@pytest.fixture
async def engine(settings: WebhooksSettings) -> AsyncIterator:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    """Ten minutes ahead of the wall clock: deliveries the consumer and the API create (at wall
    clock time) are due at once, as they are in production."""
    return ManualClock(datetime.now(UTC) + timedelta(minutes=10))


def make_dispatcher(settings: WebhooksSettings, engine, clock: ManualClock) -> Dispatcher:
    """Jitter pinned to the middle of its range, so the schedule's delays are exact."""
    policy = RetryPolicy(settings.retry_schedule_seconds, settings.retry_jitter, random=lambda: 0.5)
    return Dispatcher(settings, engine, platform_tables, clock=clock, policy=policy)


@pytest.fixture
async def dispatcher(settings: WebhooksSettings, engine, clock: ManualClock) -> AsyncIterator[Dispatcher]:
    dispatcher = make_dispatcher(settings, engine, clock)
    yield dispatcher
    await dispatcher.shutdown()


@pytest.fixture
async def api(system) -> httpx.AsyncClient:
    return await system.client("webhooks")


async def consume(engine, *envelopes: CloudEvent) -> None:
    """Hand events to the webhooks consumer's handler, as the consumer runner does (one transaction)."""
    uow = UnitOfWork(engine, platform_tables, "/salesline/webhooks")
    async with uow:
        for envelope in envelopes:
            uow.message = envelope
            await on_any_event(envelope, uow)
        await uow.commit()


async def subscribe(
    api: httpx.AsyncClient, url: str, *, event_types: list[str] | None = None, headers: dict | None = None, **extra
) -> dict:
    response = await api.post(
        "/v1/webhook-subscriptions",
        json={"url": url, "event_types": event_types or ["*"], **extra},
        headers=headers or ERP,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def settle(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """``wait_until`` for a plain (not async) condition, e.g. on what a receiver got."""

    async def check() -> bool:
        return predicate()

    await wait_until(check, timeout=timeout, interval=0.02, what="the receivers")
