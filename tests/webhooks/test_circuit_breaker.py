"""The per-endpoint circuit breaker against a local failing receiver: it opens after N
consecutive failures (nothing is sent while it is open, and other endpoints carry on), lets one
probe through when half-open, opens again for twice as long when the probe fails, closes on a
successful probe, survives a restart and shows in the subscription's API read."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import httpx

from services.webhooks.clock import ManualClock
from tests.webhooks.conftest import ERP, consume, make_dispatcher, order_created, subscribe
from tests.webhooks.receivers import Receiver, Reply


async def _read(api: httpx.AsyncClient, subscription_id: str) -> dict:
    response = await api.get(f"/v1/webhook-subscriptions/{subscription_id}", headers=ERP)
    assert response.status_code == 200
    return response.json()


async def test_the_circuit_opens_probes_and_closes_without_touching_other_endpoints(
    api: httpx.AsyncClient, receivers, engine, settings, clock: ManualClock, clean_db: asyncpg.Connection
) -> None:
    settings = settings.model_copy(
        update={"circuit_failure_threshold": 3, "circuit_open_seconds": 60, "per_subscription_concurrency": 2}
    )
    failing: Receiver = receivers(default=Reply(500, b"down"))
    healthy: Receiver = receivers()
    broken = await subscribe(api, failing.url, event_types=["order.*"])
    await subscribe(api, healthy.url, event_types=["order.*"])
    dispatcher = make_dispatcher(settings, engine, clock)
    try:
        await consume(engine, *(order_created(f"c{i}") for i in range(4)))
        await dispatcher.run_once()
        # Two at a time: two failures, two more, and the circuit opened at the third.
        assert len(failing.requests) == 4 and len(healthy.requests) == 4
        opened = await _read(api, broken["id"])
        assert opened["circuit"] == "open" and opened["consecutive_failures"] == 4
        open_until = datetime.fromisoformat(opened["circuit_open_until"])
        assert timedelta(seconds=59) < open_until - clock.now() <= timedelta(seconds=60)
        assert opened["active"] and opened["status"] == "active"

        # Retries come due (5 s) while it is open: nothing goes to it; the healthy endpoint carries on.
        clock.advance(30)
        await consume(engine, order_created("while-open"))
        await dispatcher.run_once()
        assert len(failing.requests) == 4 and len(healthy.requests) == 5
        assert (
            await clean_db.fetchval(
                "SELECT count(*) FROM webhooks.deliveries d JOIN webhooks.subscriptions s ON s.id = d.subscription_id"
                " WHERE s.url = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2",
                failing.url,
                clock.now(),
            )
            == 5
        )  # due, waiting for the circuit (no attempt spent on them)
    finally:
        await dispatcher.shutdown()

    # A restarted dispatcher reads the state from the row: still open.
    dispatcher = make_dispatcher(settings, engine, clock)
    try:
        assert await dispatcher.run_once() == 0 and len(failing.requests) == 4

        # Half-open after 60 s: exactly one probe; it fails, so the circuit opens for 120 s.
        clock.advance(31)
        assert await dispatcher.run_once() == 1 and len(failing.requests) == 5
        reopened = await _read(api, broken["id"])
        assert reopened["circuit"] == "open" and reopened["consecutive_failures"] == 5
        assert datetime.fromisoformat(reopened["circuit_open_until"]) == clock.now() + timedelta(seconds=120)
        clock.advance(119)
        assert await dispatcher.run_once() == 0

        # The endpoint recovers: the next probe succeeds, the circuit closes and the rest follow.
        failing.default = Reply(200)
        clock.advance(1)
        assert await dispatcher.run_once() == 5
        assert len(failing.requests) == 10
    finally:
        await dispatcher.shutdown()
    closed = await _read(api, broken["id"])
    assert closed["circuit"] == "closed" and closed["consecutive_failures"] == 0
    assert closed["circuit_open_until"] is None and closed["failing_since"] is None
    assert {r.webhook_id for r in failing.requests[-5:]} == {
        str(row["id"])
        for row in await clean_db.fetch(
            "SELECT d.id FROM webhooks.deliveries d JOIN webhooks.subscriptions s ON s.id = d.subscription_id"
            " WHERE s.url = $1",
            failing.url,
        )
    }
    assert await clean_db.fetchval("SELECT count(*) FROM webhooks.deliveries WHERE status = 'succeeded'") == 10


async def test_a_ping_goes_through_an_open_circuit(
    api: httpx.AsyncClient, receivers, engine, settings, clock: ManualClock
) -> None:
    """A test ping is how an integrator checks the endpoint: the breaker does not hold it."""
    settings = settings.model_copy(update={"circuit_failure_threshold": 1, "circuit_open_seconds": 600})
    receiver: Receiver = receivers().then(Reply(503))
    sub = await subscribe(api, receiver.url, event_types=["order.*"])
    dispatcher = make_dispatcher(settings, engine, clock)
    try:
        await consume(engine, order_created())
        await dispatcher.run_once()
        assert (await _read(api, sub["id"]))["circuit"] == "open"
        response = await api.post(f"/v1/webhook-subscriptions/{sub['id']}/ping", headers=ERP)
        assert response.status_code == 202, response.text
        assert await dispatcher.run_once() == 1
        assert (
            len(receiver.requests) == 2
            and receiver.requests[-1].headers["webhook-id"] != receiver.requests[0].webhook_id
        )
    finally:
        await dispatcher.shutdown()
