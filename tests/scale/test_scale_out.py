"""Scale-out proof: two replicas of every API and every worker, as real processes started by
``scripts/run_all.py`` (REPLICAS=2), carry hundreds of contracts (a quarter from leads won over
HTTP: lead → conversion → opportunity → quote → won → contract drafted by the contracts worker)
through contract signed → order → approvals → shipment → delivery → survey (+ its reminder
timer) and warranties, with
webhooks to local receivers, while one worker of each kind is killed with SIGKILL twice (the
supervisor restarts it). Every effect must happen exactly once. Across the processes, each
event a consumer records stays in its cause's trace, and the real processes' metrics show the
traffic on both API replicas and the workers' backlog gauges back at zero.

Run with ``make test-scale`` (CI does); ``SALESLINE_SCALE_CONTRACTS`` sets the number of
contracts (default 200).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest
from sqlalchemy import text

from services.contracts.db import platform_tables as contract_tables
from services.contracts.domain import ContractLine
from shared.bus import dead_letter_queue_name
from shared.db import create_engine
from shared.migrate import SERVICES
from shared.uow import UnitOfWork
from tests.conftest import auth, service_module, settings_for, wait_until
from tests.helpers import count, sign_contracts, sign_draft
from tests.scale.cluster import Cluster, start_cluster
from tests.test_metrics import samples, value
from tests.webhooks.receivers import Receiver

pytestmark = pytest.mark.scale

CONTRACTS = int(os.environ.get("SALESLINE_SCALE_CONTRACTS", "200"))
FROM_LEADS = CONTRACTS // 4  # the rest are typed in (with warranty lines)
UNITS = 2  # serialised units per order: a warranty each
LINES = [
    ContractLine(
        sku="PUMP-1", description="Pump", quantity=Decimal(UNITS), unit_price=Decimal(1500), warranty_months=12
    )
]
MANAGER = auth("manager-1", "sales_manager")
FINANCE = auth("finance-1", "finance")
ERP = auth("erp-1", "integration")
REP = auth("rep-1", "sales_rep", team="t1", region="east")
# Two subscriptions that overlap on order.delivered: each gets its own copy.
SUBSCRIPTIONS = (["order.*"], ["order.delivered.v1", "survey.*", "warranty.*"])

CLUSTER_ENV = {
    "SALESLINE_DB_POOL_SIZE": "4",
    "SALESLINE_METRICS_SAMPLE_SECONDS": "1",  # 20 processes share the test PostgreSQL with other runs
    "SALESLINE_SERVICE_DESK_SURVEY_REMINDER_AFTER_SECONDS": "2",  # every survey's timer fires in the run
    "SALESLINE_WEBHOOKS_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    "SALESLINE_WEBHOOKS_ALLOW_HTTP": "true",
    "SALESLINE_WEBHOOKS_DELIVERY_TIMEOUT_SECONDS": "3",
    "SALESLINE_WEBHOOKS_DELIVERY_LEASE_SECONDS": "5",
    "SALESLINE_WEBHOOKS_DISPATCHER_POLL_SECONDS": "0.2",
}


@pytest.fixture
async def cluster(clean_db: asyncpg.Connection, bus: str, tmp_path: Path):
    cluster = start_cluster(tmp_path / "run", replicas=2, env=CLUSTER_ENV)
    try:
        await asyncio.to_thread(cluster.wait_ready, 240)
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


@pytest.fixture
def receivers():
    made = [Receiver() for _ in SUBSCRIPTIONS]
    yield made
    for receiver in made:
        receiver.close()


async def test_two_replicas_of_everything_with_workers_killed(
    cluster: Cluster, clean_db: asyncpg.Connection, receivers: list[Receiver], bus: str
) -> None:
    started = time.monotonic()
    db = clean_db
    # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so a request never
    # goes out on a connection the server is closing (a non-idempotent POST cannot be retried).
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(keepalive_expiry=1)) as http:
        subscription_ids = []
        for receiver, types in zip(receivers, SUBSCRIPTIONS, strict=True):
            created = await http.post(
                f"{cluster.api('webhooks')}/v1/webhook-subscriptions",
                json={"url": receiver.url, "event_types": types},
                headers=ERP,
            )
            assert created.status_code == 201, created.text
            subscription_ids.append(uuid.UUID(created.json()["id"]))

        signing = asyncio.create_task(_contracts(cluster, http, bus))
        killed = await _drive(cluster, db, http, signing)
        typed_in, from_leads = await signing
        contract_ids = typed_in + from_leads
    driven = time.monotonic() - started

    # Every killed worker came back (a new process) and both replicas of each kind run.
    async def restarted() -> bool:
        return _all_running(cluster)

    await wait_until(restarted, timeout=60, interval=0.5, what="the supervisor to restart the killed workers")
    for service in SERVICES:
        pids = cluster.worker_pids(service)
        assert len(pids) == 2 and not set(pids) & set(killed[service]), (service, pids, killed[service])

    # The asynchronous tail: surveys, warranties, reminders, history, webhooks.
    n = CONTRACTS
    await _wait_count(db, "SELECT count(*) FROM service_desk.surveys", n, "surveys")
    warranted = len(typed_in)  # quotes carry no warranty: orders from won opportunities register none
    await _wait_count(db, "SELECT count(*) FROM service_desk.warranties", warranted * UNITS, "warranties")
    fired = "SELECT count(*) FROM service_desk.timers WHERE kind = 'survey.reminder' AND fired_at IS NOT NULL"
    await _wait_count(db, fired, n, "reminders")
    await _wait_count(db, "SELECT count(*) FROM leads.accounts WHERE classification = 'signed'", n, "signed accounts")
    await wait_until(lambda: _outboxes_drained(db), timeout=120, what="every outbox sent")
    events = await _wait_history_complete(db)
    expected = {
        sid: {r["id"] for r in events if _matches(r["type"], types)}
        for sid, types in zip(subscription_ids, SUBSCRIPTIONS, strict=True)
    }
    for sid, receiver in zip(subscription_ids, receivers, strict=True):
        await wait_until(
            lambda sid=sid, receiver=receiver: _all_delivered(db, sid, receiver, len(expected[sid])),
            timeout=180,
            interval=0.5,
            what=f"{len(expected[sid])} webhooks for subscription {sid}",
        )
    await asyncio.sleep(2)  # anything doubled late would show up by now

    # Every contract has exactly one order, delivered.
    orders = await db.fetch("SELECT id, contract_id, status FROM orders.orders")
    assert len(orders) == n
    assert {o["contract_id"] for o in orders} == set(contract_ids)
    # Every won opportunity drafted exactly one contract.
    drafted = await db.fetch("SELECT id, opportunity_id FROM contracts.contracts WHERE opportunity_id IS NOT NULL")
    assert sorted(r["id"] for r in drafted) == sorted(from_leads)
    assert len({r["opportunity_id"] for r in drafted}) == len(from_leads)
    assert {o["status"] for o in orders} == {"delivered"}
    assert await count(db, "SELECT count(*) FROM orders.inbox WHERE consumer = 'orders.contract_signed'") == n
    # Every delivered order: one survey, one warranty per unit, one reminder timer fired once.
    order_ids = {o["id"] for o in orders}
    surveys = await db.fetch("SELECT id, order_id, reminded_at FROM service_desk.surveys")
    assert len(surveys) == n and {s["order_id"] for s in surveys} == order_ids
    assert all(s["reminded_at"] is not None for s in surveys)
    warranty_sets = defaultdict(set)
    for w in await db.fetch("SELECT order_id, serial_number FROM service_desk.warranties"):
        warranty_sets[w["order_id"]].add(w["serial_number"])
    warranted_orders = {o["id"] for o in orders if o["contract_id"] in set(typed_in)}
    assert set(warranty_sets) == warranted_orders
    assert all(warranty_sets[o] == {f"SN-{o}-{u}" for u in range(UNITS)} for o in warranted_orders)
    timers = await db.fetch("SELECT key, fired_at, attempts FROM service_desk.timers WHERE kind = 'survey.reminder'")
    assert sorted(t["key"] for t in timers) == sorted(str(s["id"]) for s in surveys)
    assert all(t["fired_at"] is not None and t["attempts"] == 0 for t in timers)
    reminded = await db.fetch(
        "SELECT envelope::jsonb ->> 'subject' AS subject FROM service_desk.outbox"
        " WHERE event_type = 'survey.reminded.v1'"
    )
    assert sorted(r["subject"] for r in reminded) == sorted(str(s["id"]) for s in surveys)
    # One signed contract counted once per account.
    assert await count(db, "SELECT count(*) FROM leads.accounts WHERE signed_contracts <> 1") == 0
    # Every event reached the history once (it is keyed by event id; the count matches the outboxes).
    assert len(events) == await _outbox_total(db)

    # Every webhook delivered once per subscription: one delivery per matching event, each
    # succeeded, and the receiver saw exactly those webhook-ids, each with its own event.
    redelivered = cut_off = 0
    for sid, receiver in zip(subscription_ids, receivers, strict=True):
        rows = await db.fetch(
            "SELECT id, event_id, status FROM webhooks.deliveries WHERE subscription_id = $1 AND kind = 'event'", sid
        )
        assert {r["event_id"] for r in rows} == expected[sid] and len(rows) == len(expected[sid])
        assert {r["status"] for r in rows} == {"succeeded"}
        event_of_delivery = {str(r["id"]): str(r["event_id"]) for r in rows}
        seen: dict[str, str] = {}
        complete = _complete(receiver)
        for request in complete:
            event_id = json.loads(request.body)["id"]
            assert seen.setdefault(request.webhook_id, event_id) == event_id
        assert seen == event_of_delivery
        redelivered += len(complete) - len(seen)
        cut_off += len(receiver.requests) - len(complete)

    # Trace context across processes: every event a consumer recorded is in the trace of the event
    # that caused it, and every webhook request names the trace of the event it carries.
    envelopes = {
        r["id"]: json.loads(r["envelope"]) for r in await db.fetch("SELECT id, envelope FROM webhooks.event_history")
    }
    caused = [e for e in envelopes.values() if e.get("causationid") and uuid.UUID(e["causationid"]) in envelopes]
    assert len(caused) >= 3 * n  # order.created, survey.sent, warranty.registered, ...
    for event in caused:
        assert _trace(event["traceparent"]) == _trace(envelopes[uuid.UUID(event["causationid"])]["traceparent"])
    # A survey's reminder timer fires in the trace of the delivery that scheduled it.
    sent_trace = {e["subject"]: _trace(e["traceparent"]) for e in envelopes.values() if e["type"] == "survey.sent.v1"}
    reminders = [e for e in envelopes.values() if e["type"] == "survey.reminded.v1"]
    assert len(reminders) == n and all(_trace(e["traceparent"]) == sent_trace[e["subject"]] for e in reminders)
    for receiver in receivers:
        for request in _complete(receiver):
            assert _trace(request.headers["traceparent"]) == _trace(json.loads(request.body)["traceparent"])

    # Nothing was dead-lettered.
    dead = await _dead_letters()
    assert dead == {}, dead

    # Both orders API replicas served the drive (latency by route), and every worker replica's
    # sampled gauges settled: nothing unsent, no lag, nothing dead-lettered, no timer overdue.
    async with httpx.AsyncClient(timeout=5) as http:
        for replica in range(cluster.replicas):
            api = samples((await http.get(f"{cluster.api('orders', replica)}/metrics")).text)
            route = "/v1/orders/{order_id}/approve"
            assert value(api, "http_request_duration_seconds_count", route=route, method="POST") >= n
        await wait_until(lambda: _workers_settled(cluster, http), timeout=30, interval=0.5, what="settled gauges")
        duplicates = sum(
            [value(w, "salesline_events_duplicate_total") or 0 for w in await _scrape_workers(cluster, http)]
        )
    print(
        f"\nscale-out: {n} contracts ({len(from_leads)} from won leads), 2 replicas, workers killed: "
        f"{ {s: len(p) for s, p in killed.items()} }; driven in {driven:.1f}s, "
        f"settled in {time.monotonic() - started:.1f}s; {len(events)} events; "
        f"{sum(len(e) for e in expected.values())} webhooks ({redelivered} sent again after a kill, same webhook-id; "
        f"{cut_off} cut off mid-request by a kill); "
        f"{duplicates:.0f} redelivered events skipped by the inboxes (counted by the processes alive at the end)"
    )


async def _drive(
    cluster: Cluster, db: asyncpg.Connection, http: httpx.AsyncClient, signing: asyncio.Task
) -> dict[str, list[int]]:
    """Approve, ship and deliver every order as it appears, over both API replicas; kill one worker
    of each kind when half the contracts are signed, and another when half the orders are delivered."""
    gate = asyncio.Semaphore(8)
    tasks: dict[uuid.UUID, asyncio.Task] = {}
    # Wave i kills the i-th original worker of each kind, so both replicas die once.
    originals = {s: cluster.worker_pids(s) for s in SERVICES}
    killed: dict[str, list[int]] = {s: [] for s in SERVICES}
    waves = [
        "SELECT count(*) FROM contracts.outbox WHERE event_type = 'contract.signed.v1'",
        "SELECT count(*) FROM orders.orders WHERE status = 'delivered'",
    ]
    deadline = time.monotonic() + 600
    try:
        while True:
            for row in await db.fetch("SELECT id FROM orders.orders WHERE status = 'pending_approval'"):
                if row["id"] not in tasks:
                    replica = len(tasks) % cluster.replicas
                    tasks[row["id"]] = asyncio.create_task(
                        _fulfil(http, cluster.api("orders", replica), row["id"], gate)
                    )
            if waves and await count(db, waves[0]) >= CONTRACTS // 2 and _all_running(cluster):
                waves.pop(0)
                for service in SERVICES:
                    pid = originals[service][len(killed[service])]
                    os.kill(pid, signal.SIGKILL)
                    killed[service].append(pid)
            for task in [*tasks.values(), signing]:
                if task.done() and task.exception() is not None:
                    raise task.exception()
            if len(tasks) == CONTRACTS and all(t.done() for t in tasks.values()) and not waves:
                return killed
            done = sum(t.done() for t in tasks.values())
            assert time.monotonic() < deadline, f"{done}/{CONTRACTS} orders delivered, {len(waves)} kill waves left"
            await asyncio.sleep(0.3)
    finally:
        for task in tasks.values():
            task.cancel()


def _all_running(cluster: Cluster) -> bool:
    """Both replicas of every worker are up (the supervisor restarted the ones killed before)."""
    return all(len(cluster.worker_pids(s)) == cluster.replicas for s in SERVICES)


async def _contracts(cluster: Cluster, http: httpx.AsyncClient, tag: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Signed contracts: most typed in, a quarter from leads won over HTTP (opportunity.won → the
    contracts worker drafts → review, approvals and signatures at handler level)."""
    gate = asyncio.Semaphore(4)
    typed_in, from_leads = await asyncio.gather(
        sign_contracts(CONTRACTS - FROM_LEADS, customer_prefix=f"scale-{tag}", lines=LINES),
        asyncio.gather(*(_from_lead(cluster, http, gate, f"{tag}-{i}", i) for i in range(FROM_LEADS))),
    )
    return typed_in, list(from_leads)


async def _from_lead(cluster: Cluster, http: httpx.AsyncClient, gate: asyncio.Semaphore, tag: str, i: int) -> uuid.UUID:
    base = cluster.api("leads", i % cluster.replicas)
    async with gate:
        lead = await _post(http, f"{base}/v1/leads", REP, _lead_body(tag), expect=201)
        converted = await _post(http, f"{base}/v1/leads/{lead.json()['id']}/convert", REP, {}, expect=201)
        opportunity_id = converted.json()["opportunity"]["id"]
        stage = f"{base}/v1/opportunities/{opportunity_id}/stage"
        for name in ("needs_analysis", "proposal", "negotiation"):
            await _post(http, stage, REP, {"stage": name})
        quote = {
            "lines": [{"sku": "PUMP-1", "name": "Pump", "quantity": str(UNITS), "unit_price": "1500.00"}],
            "valid_until": (date.today() + timedelta(days=30)).isoformat(),
            "payment_terms": "net 30",
            "delivery_address": "1 Century Ave, Shanghai",
        }
        quoted = await _post(http, f"{base}/v1/opportunities/{opportunity_id}/quotes", REP, quote, expect=201)
        await _post(http, f"{base}/v1/quotes/{quoted.json()['id']}/accept", REP)
        await _post(http, stage, REP, {"stage": "won"})

    settings = settings_for("contracts")
    engine = create_engine(settings)
    try:

        async def drafted() -> uuid.UUID | None:
            async with engine.connect() as conn:
                sql = text("SELECT id FROM contracts.contracts WHERE opportunity_id = :id")
                return await conn.scalar(sql, {"id": uuid.UUID(opportunity_id)})

        contract_id = await wait_until(drafted, timeout=120, interval=0.3, what="the contract drafted from the win")
        async with gate:
            return await sign_draft(
                lambda: UnitOfWork(engine, contract_tables, settings.source),
                contract_id,
                owner_id="rep-1",
                customer=f"Contact {tag}",
            )
    finally:
        await engine.dispose()


def _lead_body(tag: str) -> dict:
    return {
        "source": "trade_show",
        "company_name": f"Scale {tag} Ltd.",
        "contact_name": f"Contact {tag}",
        "region": "east",
        "industry": "manufacturing",
        "budget": "600000.00",
        "currency": "CNY",
        "decision_timeframe": "within_1_month",
        "need_fit": "high",
    }


async def _fulfil(http: httpx.AsyncClient, base: str, order_id: uuid.UUID, gate: asyncio.Semaphore) -> None:
    async with gate:
        url = f"{base}/v1/orders/{order_id}"
        for headers in (MANAGER, FINANCE):
            await _post(http, f"{url}/approve", headers)
        shipment = await _post(
            http, f"{url}/shipments", MANAGER, {"items": [{"line_no": 1, "quantity": str(UNITS)}]}, expect=201
        )
        shipment_url = f"{base}{shipment.headers['Location']}"
        await _post(http, f"{shipment_url}/pick", MANAGER)
        serials = [f"SN-{order_id}-{u}" for u in range(UNITS)]
        lines = [{"line_no": 1, "serial_numbers": serials}]
        await _post(http, f"{shipment_url}/ship", MANAGER, {"carrier": "SF", "tracking_number": "T-1", "lines": lines})
        delivered = await _post(http, f"{shipment_url}/deliver", MANAGER)
        assert delivered.json()["status"] == "delivered", delivered.text


async def _post(http: httpx.AsyncClient, url: str, headers: dict, body: dict | None = None, *, expect: int = 200):
    response = await http.post(url, json=body, headers=headers)
    assert response.status_code == expect, f"POST {url}: {response.status_code} {response.text}"
    return response


async def _wait_count(db: asyncpg.Connection, sql: str, expected: int, what: str) -> None:
    async def reached() -> bool:
        return await count(db, sql) >= expected

    await wait_until(reached, timeout=180, interval=0.5, what=f"{expected} {what}")


async def _outbox_total(db: asyncpg.Connection) -> int:
    return sum([await count(db, f"SELECT count(*) FROM {schema}.outbox") for schema in SERVICES])


async def _outboxes_drained(db: asyncpg.Connection) -> bool:
    return all([await count(db, f"SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL") == 0 for s in SERVICES])


async def _wait_history_complete(db: asyncpg.Connection) -> list[asyncpg.Record]:
    async def complete():
        total = await _outbox_total(db)
        rows = await db.fetch("SELECT id, type FROM webhooks.event_history")
        return rows if len(rows) >= total else None

    return await wait_until(complete, timeout=180, interval=0.5, what="every event in the webhooks history")


def _trace(traceparent: str) -> str:
    return traceparent.split("-")[1]


def _matches(event_type: str, patterns: list[str]) -> bool:
    return any(event_type == p or (p.endswith(".*") and event_type.startswith(p[:-1])) for p in patterns)


async def _all_delivered(db: asyncpg.Connection, subscription_id: uuid.UUID, receiver: Receiver, expected: int) -> bool:
    succeeded = await count(
        db,
        "SELECT count(*) FROM webhooks.deliveries"
        " WHERE subscription_id = $1 AND status = 'succeeded' AND kind = 'event'",
        subscription_id,
    )
    return succeeded >= expected and len({r.webhook_id for r in _complete(receiver)}) >= expected


def _complete(receiver: Receiver) -> list:
    """Requests that arrived whole (a sender killed mid-request leaves a short body behind)."""
    return [r for r in list(receiver.requests) if len(r.body) == int(r.headers.get("content-length", -1))]


async def _dead_letters() -> dict[str, int]:
    """Messages waiting in any consumer's dead-letter queue of this test's topology."""
    found = {}
    connection = await aio_pika.connect(os.environ["SALESLINE_AMQP_URL"], timeout=5)
    async with connection:
        for service in SERVICES:
            settings = settings_for(service)
            for subscription in service_module(service, "consumers").SUBSCRIPTIONS:
                channel = await connection.channel()
                name = dead_letter_queue_name(settings.queue_name(subscription.name))
                queue = await channel.declare_queue(name, passive=True)
                if queue.declaration_result.message_count:
                    found[name] = queue.declaration_result.message_count
                await channel.close()
    return found


async def _scrape_workers(cluster: Cluster, http: httpx.AsyncClient) -> list:
    return [
        samples((await http.get(cluster.worker_metrics(service, replica))).text)
        for service in SERVICES
        for replica in range(cluster.replicas)
    ]


async def _workers_settled(cluster: Cluster, http: httpx.AsyncClient) -> bool:
    gauges = (
        "salesline_outbox_backlog",
        "salesline_consumer_queue_depth",
        "salesline_dead_letters",
        "salesline_timers_oldest_due_seconds",
    )
    scraped = await _scrape_workers(cluster, http)
    return all(value(w, "salesline_outbox_backlog") is not None for w in scraped) and all(
        (value(w, gauge) or 0) == 0 for w in scraped for gauge in gauges
    )
