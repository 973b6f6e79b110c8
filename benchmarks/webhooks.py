"""Benchmark 4: webhooks, event published → webhook received by a local receiver.

Real code, each part in its own process:

* producer process: ``UnitOfWork.emit`` + ``commit()`` of ``bench.ping.v1`` events into the
  contracts outbox (as in benchmark 1), with the contracts outbox relay in a process of its own
  (the real :class:`~shared.outbox.OutboxRelay`, as the contracts worker runs it): events reach
  the bus exactly as a service publishes them;
* the real webhooks worker, ``python -m services.webhooks.worker`` (consumer of every event →
  event history + one delivery per matching subscription, and the dispatcher: claim, sign per
  Standard Webhooks, POST, record the attempt), with production settings except
  ``SALESLINE_WEBHOOKS_ALLOWED_NETWORKS=["127.0.0.0/8"]`` and ``SALESLINE_WEBHOOKS_ALLOW_HTTP``;
* one subscription (``bench.*``) made by the real ``create_subscription`` handler, for
* a receiver process: a tiny raw asyncio HTTP/1.1 server on 127.0.0.1 that reads each request,
  stamps it (``time.monotonic()``, one clock for every process on Linux), notes its
  ``webhook-id`` and the event's ``seq``, and answers ``200`` with an empty body. It verifies
  no signature (that costs the receiver, not Salesline).

Measured like benchmark 1 (its ``measure``): saturation = the producer runs closed loop with a
bounded number of events produced and not yet received; the figure is webhooks received per
second over the window. Latency = from the producer's ``commit()`` returning to the receiver
having read the request, one event per transaction at a steady rate.

Baselines, beside them: the same receiver hit directly by a bare keep-alive HTTP/1.1 POST loop
(same body size and headers) at the dispatcher's concurrency towards one endpoint
(``per_subscription_concurrency``); and one bare aio-pika hop (confirms → consume) at the
same rate. The run has an exchange of its own; the webhooks queue is purged first (it got
copies of the other benchmarks' events).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from benchmarks.broker import own_exchange
from benchmarks.common import (
    MP,
    Report,
    Server,
    admin_connection,
    free_port,
    join,
    receive,
    spawn,
    wait_for_consumer,
    watch_stop,
)
from benchmarks.cpu import CpuMeter, describe
from benchmarks.http11 import Http11Client, request_head
from benchmarks.pipeline import BenchPing, Plan, Side, bare_hop_latency, measure, produce_outbox, run_relay

WEBHOOKS_QUEUE = "webhooks.all_events"
RECEIVER_PATH = "/hooks/bench"
SEQ = re.compile(rb'"seq":\s*(-?\d+)')
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

ENVIRONMENT = {
    "SALESLINE_WEBHOOKS_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    "SALESLINE_WEBHOOKS_ALLOW_HTTP": "true",
}


# -- the receiver ---------------------------------------------------------------------------


async def run_receiver(port: int, duplicates: Any, stop: Any, received: Any, results: Any) -> None:
    """Answer every POST with 200; ``received`` counts distinct ``webhook-id``s, ``duplicates`` the
    rest; puts the (seq, time read) of every tracked event on ``results`` when stopped."""
    stamps: list[tuple[int, float]] = []
    ids: set[bytes] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, webhook_id = 0, b""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        webhook_id = value.strip()
                    elif name == b"transfer-encoding":
                        raise RuntimeError("the receiver reads Content-Length bodies only")
                body = await reader.readexactly(length) if length else b""
                now = time.monotonic()
                writer.write(OK)
                if webhook_id and webhook_id in ids:
                    duplicates.value += 1
                    continue
                ids.add(webhook_id)
                received.value += 1
                if (match := SEQ.search(body)) is not None and (seq := int(match.group(1))) >= 0:
                    stamps.append((seq, now))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client closed, or we are stopping
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await watch_stop(stop).wait()
    results.put(stamps)


async def _receiver_up(port: int, process: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        if not process.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start listening")
        await asyncio.sleep(0.05)


# -- the bare HTTP baseline -----------------------------------------------------------------


def _sample_request(port: int) -> tuple[bytes, bytes]:
    """A request like the dispatcher's: the same envelope, headers of the same sizes; split where
    its ``webhook-id`` (12 digits) goes, so each request can have its own."""
    from benchmarks.pipeline import _sample_body

    body = _sample_body()
    headers = {
        "Content-Type": "application/cloudevents+json",
        "User-Agent": "Salesline-Webhooks/1.0 (+https://www.standardwebhooks.com)",
        "webhook-id": "00000000-0000-0000-0000-@",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + "A" * 44,
    }
    before, after = (request_head("POST", RECEIVER_PATH, f"127.0.0.1:{port}", headers, body) + body).split(b"@")
    return before, after


async def bare_post_throughput(concurrency: int, warmup: float, window: float) -> dict[str, Any]:
    """The receiver hit directly by ``concurrency`` keep-alive POST loops; requests/s it read."""
    port = free_port()
    received, duplicates = MP.Value("q", 0, lock=False), MP.Value("q", 0, lock=False)
    stop, results = MP.Event(), MP.Queue()
    receiver = spawn(run_receiver, port, duplicates, stop, received, results, name="bare-receiver")
    try:
        await _receiver_up(port, receiver)
        before, after = _sample_request(port)
        done = asyncio.Event()
        sent = issued = 0

        async def loop() -> None:
            nonlocal sent, issued
            client = Http11Client("127.0.0.1", port)
            try:
                while not done.is_set():
                    issued += 1
                    status, _ = await client.request(before + b"%012d" % issued + after)
                    if status != 200:
                        raise RuntimeError(f"the receiver answered {status}")
                    sent += 1
            finally:
                client.close()

        loops = [asyncio.create_task(loop()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        meter = CpuMeter({"driver (POST loops)": os.getpid(), "receiver": receiver.pid})
        meter.start()
        start, t0 = sent, time.monotonic()
        await asyncio.sleep(window)
        end, t1 = sent, time.monotonic()
        cores = meter.stop()
        done.set()
        await asyncio.gather(*loops)
        stop.set()
        await receive(results, receiver)
        await join(receiver)
    finally:
        stop.set()
        if receiver.is_alive():
            receiver.terminate()
    return {
        "requests_per_s": (end - start) / (t1 - t0),
        "sent": sent,
        "received": received.value,
        "duplicates": duplicates.value,
        "cpu_cores": cores,
    }


# -- the measurement ------------------------------------------------------------------------


@contextlib.contextmanager
def _webhooks_environment() -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in ENVIRONMENT}
    os.environ.update(ENVIRONMENT)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run(quick: bool) -> Report:
    with _webhooks_environment(), own_exchange("webhooks"):
        report = await _run(quick)
    hop = await bare_hop_latency(report.details["plan"]["rate"], *report.details["hop_plan"])
    steady = report.details["webhooks"]["steady"]
    rate = report.details["plan"]["rate"]
    report.add(f"p50 published → webhook received at {rate:g}/s", steady["p50_ms"], "ms", hop["p50_ms"])
    report.add(f"p99 published → webhook received at {rate:g}/s", steady["p99_ms"], "ms", hop["p99_ms"])
    report.notes.append(
        f"latency samples: webhooks {steady['measured']} (max {steady['max_ms']:.1f} ms), "
        f"bare hop {hop['measured']} (max {hop['max_ms']:.1f} ms); at {rate:g}/s " + describe(steady["cpu_cores"])
    )
    report.details["baseline_hop"] = hop
    return report


async def _run(quick: bool) -> Report:
    from services.webhooks import handlers
    from services.webhooks.config import WebhooksSettings
    from services.webhooks.db import platform_tables
    from shared.auth import Principal
    from shared.bus import connect
    from shared.db import create_engine
    from shared.service import Runtime

    plan = (
        Plan(warmup=1.5, window=3.0, rate=50.0, max_in_flight=2000)
        if quick
        else Plan(warmup=3.0, window=20.0, rate=50.0, max_in_flight=2000)
    )
    settings = WebhooksSettings()
    concurrency = settings.per_subscription_concurrency
    report = Report(
        "4. Webhooks: event published → webhook received by a local receiver",
        f"contracts outbox + relay → real webhooks worker (python -m services.webhooks.worker, one "
        f"subscription, ≤ {concurrency} requests in flight to it) → raw asyncio receiver on 127.0.0.1; "
        f"saturation = producer closed loop, {plan.per_tx} events/transaction, ≤ {plan.max_in_flight} "
        f"not yet received, {plan.window:g} s window; latency = producer commit → request read, "
        f"1 event/transaction at {plan.rate:g}/s. Baselines: the same receiver hit by a bare keep-alive "
        f"POST loop at concurrency {concurrency}; one bare aio-pika hop at {plan.rate:g}/s. In the CPU lines "
        "'consumer' is the receiver; the webhooks worker consumes and dispatches in one process.",
    )

    # Copies of the other benchmarks' events would be consumed first: start from an empty queue.
    queue = settings.queue_name(WEBHOOKS_QUEUE)
    connection = await connect(settings, name="bench-setup")
    async with connection:
        channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.queue_purge(queue)

    port, duplicates = free_port(), MP.Value("q", 0, lock=False)
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    try:
        subscription, _ = await handlers.create_subscription(
            handlers.CreateSubscription(url=f"http://127.0.0.1:{port}{RECEIVER_PATH}", event_types=("bench.*",)),
            Principal(sub="bench-erp", roles=frozenset({"integration"})),
            runtime.uow(),
            settings,
        )
    finally:
        await runtime.engine.dispose()

    worker = Server("webhooks-worker", [sys.executable, "-m", "services.webhooks.worker"])
    try:
        await worker.start()
        await wait_for_consumer(queue)
        receiver = functools.partial(run_receiver, port, duplicates)
        side = Side(
            "webhooks", queue, produce_outbox, receiver, relay=run_relay, watch=(("webhooks worker", worker.pid),)
        )
        webhooks = await measure(side, plan)
        worker.check_alive()
    finally:
        await worker.stop()

    bare = await bare_post_throughput(concurrency, plan.warmup, plan.window)
    ws = webhooks["saturation"]
    report.add(
        f"deliveries/s to one receiver (saturation, ≤ {concurrency} in flight)",
        ws["events_per_s"],
        "/s",
        bare["requests_per_s"],
    )
    end = ws["end"]
    report.notes.append(
        f"backlog at window end: {end['outbox_unsent']} outbox rows unsent, {end['queue_ready']} ready in the "
        f"webhooks queue, {end['produced'] - end['consumed']} events produced and not yet received in all; "
        f"in-flight growth {ws['in_flight_growth_per_s']:+.0f}/s; produced {ws['produced_per_s']:.0f} ev/s"
    )
    report.notes.append("saturation " + describe(ws["cpu_cores"]))
    report.notes.append("bare POST loop " + describe(bare["cpu_cores"]))
    report.details = {
        "plan": plan.__dict__,
        "hop_plan": [plan.warmup, plan.window],
        "webhooks": webhooks,
        "baseline_post": bare,
    }
    await _verify(report, webhooks, subscription.id, duplicates.value)
    return report


async def _verify(report: Report, webhooks: dict[str, Any], subscription_id: Any, duplicates: int) -> None:
    """Every event produced became one delivery, succeeded, and reached the receiver once."""
    admin = await admin_connection()
    try:
        rows = await admin.fetch(
            "SELECT status, count(*) AS n FROM webhooks.deliveries WHERE subscription_id = $1 GROUP BY status",
            subscription_id,
        )
        history = await admin.fetchval(
            "SELECT count(*) FROM webhooks.event_history WHERE type = $1", BenchPing.routing_key()
        )
    finally:
        await admin.close()
    statuses = {row["status"]: row["n"] for row in rows}
    produced, received = webhooks["total_produced"], webhooks["total_consumed"]
    report.details["check"] = {"produced": produced, "received": received, "deliveries": statuses, "history": history}
    report.details["check"]["duplicates_received"] = duplicates
    if statuses != {"succeeded": produced} or received != produced or history != produced:
        report.error = (
            f"webhooks lost or duplicated: produced {produced}, received {received} (+{duplicates} again), "
            f"deliveries {statuses}, event history {history}"
        )
        return
    report.notes.append(
        f"check: {produced} events produced, {produced} deliveries all succeeded, {received} distinct webhooks received"
        + (f" (+{duplicates} sent again, at least once)" if duplicates else "")
    )
