"""Benchmark 1: the event pipeline, outbox → relay → broker → consumer with inbox.

Pipeline (every part is the real code, each in its own process, as in production where the
relay runs in the producing service's worker and the consumer in the consuming service's):

* producer process: ``UnitOfWork.emit`` + ``commit()`` into the contracts outbox (a benchmark
  event, ``bench.ping.v1``), through the real engine and envelope code;
* relay process: the real :class:`~shared.outbox.OutboxRelay` of the contracts schema
  (NOTIFY wake-up, claim with lease, publisher confirms + ``mandatory``, mark sent);
* consumer process: the real :class:`~shared.inbox.ConsumerRunner` on an orders-schema unit of
  work (inbox row in the handler's transaction, ack after commit) with a trivial handler.

Baseline, beside it: bare aio-pika. A publisher process publishes with publisher confirms and
``mandatory`` (same body size, persistent; at saturation 500 publishes awaiting their confirm
at any time, as a relay batch) and a consumer process consumes with manual ack, from a queue
declared exactly like the pipeline's (quorum, same arguments, same prefetch); no database.
Both run on an exchange of their own, so no other queue gets copies.

Two measurements for each:

* saturation: the producer runs closed-loop (transactions of ``per_tx`` events) but keeps at
  most ``max_in_flight`` events produced and not yet consumed, so the pipeline runs flat out
  with a bounded backlog; the figure is the consumer's committed events/s over the window, and
  the backlog (outbox rows unsent, queue depth) is sampled at the window's start and end;
* latency at a steady rate: one event per transaction, open loop at ``rate``/s; the latency of
  an event is from the moment its producer's ``commit()`` returned to the moment the
  consumer's ``commit()`` returned (a unit-of-work subclass stamps it right after the commit,
  before the ack). Both stamps are ``time.monotonic()``, one clock for every process on Linux.
  Baseline: from just before ``publish()`` to the consumer's callback (then it acks).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import DeliveryMode

from benchmarks.broker import QueueProbe, declare_queue, own_exchange
from benchmarks.common import (
    MP,
    Goal,
    Report,
    admin_connection,
    join,
    latency_summary,
    paced,
    receive,
    spawn,
    wait_until,
    watch_stop,
)
from benchmarks.cpu import CpuMeter, describe
from shared.events.base import CONTENT_TYPE, Event, make_envelope

PIPELINE_CONSUMER = "bench.pipeline"
BASELINE_CONSUMER = "bench.baseline"
BASELINE_ROUTING_KEY = "bench.baseline.v1"


class BenchPing(Event, type="bench.ping.v1"):
    """The benchmark's event; ``seq`` >= 0 marks one whose latency is measured."""

    seq: int = -1
    customer_id: str = "bench-customer"


@dataclass(frozen=True)
class Plan:
    warmup: float
    window: float
    rate: float = 500.0
    per_tx: int = 50
    producer_tasks: int = 4
    max_in_flight: int = 5000
    baseline_publishers: int = 500


@dataclass(frozen=True)
class Load:
    """What a producer does: ``saturate`` (closed loop, bounded in flight) or ``paced`` (open loop)."""

    mode: str
    per_tx: int = 1
    tasks: int = 1
    max_in_flight: int = 0
    rate: float = 0.0
    duration: float = 0.0


# -- pipeline processes ---------------------------------------------------------------------


async def produce_outbox(load: Load, produced: Any, consumed: Any, started: Any, stop: Any, results: Any) -> None:
    """Commit ``bench.ping`` events into the contracts outbox through the real unit of work."""
    from services.contracts.config import ContractsSettings
    from services.contracts.db import platform_tables
    from shared.db import create_engine
    from shared.service import Runtime

    settings = ContractsSettings()
    runtime = Runtime(settings, create_engine(settings), platform_tables)
    commits: dict[int, float] = {}

    async def commit(seqs: range | list[int]) -> None:
        uow = runtime.uow()
        async with uow:
            for seq in seqs:
                uow.emit(BenchPing(seq=seq), subject="bench-aggregate")
            await uow.commit()
        now = time.monotonic()
        produced.value += len(seqs)
        for seq in seqs:
            if seq >= 0:
                commits[seq] = now

    try:
        started.set()
        if load.mode == "paced":
            await paced(load.rate, load.duration, lambda k: commit([k]))
        else:

            async def saturate() -> None:
                untracked = range(-1, -1 - load.per_tx, -1)
                while not stop.is_set():
                    await wait_until(
                        lambda: produced.value - consumed.value < load.max_in_flight or stop.is_set(),
                        within=math.inf,
                        what="the consumer",
                        interval=0.001,
                    )
                    await commit(untracked)

            await asyncio.gather(*(saturate() for _ in range(load.tasks)))
    finally:
        await runtime.engine.dispose()
    results.put({"produced": produced.value, "commits": commits})


async def run_relay(stop: Any) -> None:
    """The contracts outbox relay, as the contracts worker runs it."""
    from services.contracts.config import ContractsSettings
    from services.contracts.db import platform_tables
    from shared.db import create_engine
    from shared.outbox import OutboxRelay
    from shared.service import settle_heap

    settings = ContractsSettings()
    engine = create_engine(settings)
    settle_heap()  # as run_worker does
    try:
        await OutboxRelay(settings, engine, platform_tables).run(watch_stop(stop))
    finally:
        await engine.dispose()


async def consume_with_inbox(stop: Any, consumed: Any, results: Any) -> None:
    """The real consumer runner on the orders schema, with a trivial handler."""
    from services.orders.config import OrdersSettings
    from services.orders.db import platform_tables
    from shared.db import create_engine
    from shared.inbox import ConsumerRunner, Subscription
    from shared.service import settle_heap
    from shared.uow import UnitOfWork

    settings = OrdersSettings()
    engine = create_engine(settings)
    stamps: list[tuple[int, float]] = []

    class StampingUnitOfWork(UnitOfWork):
        """Counts (and, for tracked events, timestamps) what the handler saw, once committed."""

        def __init__(self) -> None:
            super().__init__(engine, platform_tables, settings.source)
            self.seen: list[int] = []

        async def commit(self) -> None:
            await super().commit()
            now = time.monotonic()
            consumed.value += len(self.seen)
            stamps.extend((seq, now) for seq in self.seen if seq >= 0)

    async def on_ping(event: BenchPing, uow: StampingUnitOfWork) -> None:
        uow.seen.append(event.seq)

    subscription = Subscription(PIPELINE_CONSUMER, on_ping, events=(BenchPing,))
    settle_heap()  # as run_worker does
    try:
        await ConsumerRunner(settings, [subscription], StampingUnitOfWork).run(watch_stop(stop))
    finally:
        await engine.dispose()
    results.put(stamps)


# -- baseline processes (bare aio-pika, no database) ----------------------------------------


def _sample_body() -> bytes:
    """A message as large as the pipeline's (a bench.ping envelope)."""
    return make_envelope(BenchPing(seq=0), source="/salesline/contracts", subject="bench-aggregate").to_json().encode()


async def publish_bare(load: Load, produced: Any, consumed: Any, started: Any, stop: Any, results: Any) -> None:
    from shared.bus import connect, declare_exchange
    from shared.config import ServiceSettings

    settings = ServiceSettings()
    connection = await connect(settings, name="bench-bare-publisher")
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await declare_exchange(channel, settings)
    body = _sample_body()
    sent: dict[int, float] = {}

    async def publish(seq: int) -> None:
        message = aio_pika.Message(
            body=body, message_id=str(seq), content_type=CONTENT_TYPE, delivery_mode=DeliveryMode.PERSISTENT
        )
        started = time.monotonic()
        await exchange.publish(message, routing_key=BASELINE_ROUTING_KEY, mandatory=True)
        produced.value += 1
        if seq >= 0:
            sent[seq] = started

    async with connection:
        started.set()
        if load.mode == "paced":
            await paced(load.rate, load.duration, publish)
        else:

            async def saturate() -> None:  # one of `tasks` publishers, each waiting for its confirm
                while not stop.is_set():
                    await wait_until(
                        lambda: produced.value - consumed.value < load.max_in_flight or stop.is_set(),
                        within=math.inf,
                        what="the consumer",
                        interval=0.001,
                    )
                    await publish(-1)

            await asyncio.gather(*(saturate() for _ in range(load.tasks)))
    results.put({"produced": produced.value, "commits": sent})


async def consume_bare(stop: Any, consumed: Any, results: Any) -> None:
    from shared.bus import connect
    from shared.config import ServiceSettings

    settings = ServiceSettings()
    stamps: list[tuple[int, float]] = []

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.monotonic()
        await message.ack()
        consumed.value += 1
        seq = int(message.message_id or -1)
        if seq >= 0:
            stamps.append((seq, now))

    connection = await connect(settings, name="bench-bare-consumer")
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=settings.consumer_prefetch)
        queue = await channel.declare_queue(settings.queue_name(BASELINE_CONSUMER), passive=True)
        await queue.consume(on_message, no_ack=False)
        await watch_stop(stop).wait()
    results.put(stamps)


# -- the measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    name: str
    queue: str
    producer: Callable
    consumer: Callable
    relay: Callable | None = None
    # Other processes (name → pid) whose CPU the meter reports, e.g. a real worker started outside.
    watch: tuple[tuple[str, int], ...] = ()


@dataclass
class Snapshot:
    at: float
    produced: int
    consumed: int
    outbox_unsent: int
    queue_ready: int

    @property
    def in_flight(self) -> int:
        return self.produced - self.consumed


async def measure(side: Side, plan: Plan, *, saturation: bool = True) -> dict[str, Any]:
    """Saturation (unless ``saturation=False``), then latency at ``plan.rate``, on one side."""
    from shared.config import ServiceSettings

    produced, consumed = MP.Value("q", 0, lock=False), MP.Value("q", 0, lock=False)
    stop_workers, consumer_results = MP.Event(), MP.Queue()
    children = {
        "consumer": spawn(side.consumer, stop_workers, consumed, consumer_results, name=f"{side.name}-consumer")
    }
    if side.relay is not None:
        children["relay"] = spawn(side.relay, stop_workers, name=f"{side.name}-relay")

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(stop_workers.set)
        stack.push_async_callback(_terminate, list(children.values()))
        admin = await admin_connection()
        stack.push_async_callback(admin.close)
        probe = await stack.enter_async_context(QueueProbe(ServiceSettings()))

        async def snapshot() -> Snapshot:
            unsent = 0
            if side.relay is not None:
                unsent = await admin.fetchval("SELECT count(*) FROM contracts.outbox WHERE sent_at IS NULL")
            ready, _ = await probe.depth(side.queue)
            return Snapshot(time.monotonic(), produced.value, consumed.value, unsent, ready)

        def drained() -> bool:
            for child in children.values():
                if not child.is_alive():
                    raise RuntimeError(f"{child.name} died (status {child.exitcode})")
            return consumed.value >= produced.value

        async def run_producer(load: Load) -> dict[str, Any]:
            """Run one producer; observe a window after its warm-up, while it still runs."""
            started, stop, results = MP.Event(), MP.Event(), MP.Queue()
            producer = spawn(
                side.producer, load, produced, consumed, started, stop, results, name=f"{side.name}-producer"
            )
            try:
                await wait_until(lambda: started.is_set() or not producer.is_alive(), within=60, what="the producer")
                await asyncio.sleep(plan.warmup)
                meter = CpuMeter(
                    {"producer": producer.pid, **{n: c.pid for n, c in children.items()}, **dict(side.watch)}
                )
                meter.start()
                start = await snapshot()
                await asyncio.sleep(plan.window)
                end = await snapshot()
                cores = meter.stop()
                stop.set()  # a paced producer stops by itself, a saturating one on this
                report = await receive(results, producer, within=load.duration + 120)
                await join(producer)
            finally:
                await _terminate([producer])
            elapsed = end.at - start.at
            report["window"] = {
                "events_per_s": (end.consumed - start.consumed) / elapsed,
                "produced_per_s": (end.produced - start.produced) / elapsed,
                "start": start.__dict__,
                "end": end.__dict__,
                "in_flight_growth_per_s": (end.in_flight - start.in_flight) / elapsed,
                "cpu_cores": cores,
            }
            await wait_until(drained, within=120, what=f"{side.name} to consume every event")
            return report

        deadline = time.monotonic() + 30
        while (await probe.depth(side.queue))[1] < 1:
            if time.monotonic() > deadline or not all(child.is_alive() for child in children.values()):
                raise RuntimeError(f"{side.name}: the consumer did not subscribe")
            await asyncio.sleep(0.05)

        saturated = None
        if saturation:
            workers = plan.producer_tasks if side.relay is not None else plan.baseline_publishers
            per_tx = plan.per_tx if side.relay is not None else 1
            saturate = Load("saturate", per_tx=per_tx, tasks=workers, max_in_flight=plan.max_in_flight)
            saturated = (await run_producer(saturate))["window"]

        # Paced for warm-up + window + a little, so the window never sees the producer's end.
        steady = await run_producer(Load("paced", rate=plan.rate, duration=plan.warmup + plan.window + 0.5))

        stop_workers.set()
        stamps = await receive(consumer_results, children["consumer"])
        for child in children.values():
            await join(child)

    # The latency of every event committed inside the window (after the warm-up).
    commits, window = steady["commits"], steady["window"]
    first, last = window["start"]["at"], window["end"]["at"]
    latencies = [done - commits[seq] for seq, done in stamps if first <= commits.get(seq, 0) <= last]
    return {
        "saturation": saturated,
        "steady": {
            "rate": plan.rate,
            "achieved_rate": window["produced_per_s"],
            "measured": len(latencies),
            **latency_summary(latencies),
            "cpu_cores": window["cpu_cores"],
        },
        "total_produced": produced.value,
        "total_consumed": consumed.value,
    }


async def _terminate(processes: list[Any]) -> None:
    """Children still running after a failure (or a producer after its window): stop them."""
    for process in processes:
        if process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, 5)


async def run(quick: bool) -> Report:
    with own_exchange("pipeline"):
        return await _run(quick)


async def bare_hop_latency(rate: float, warmup: float, window: float) -> dict[str, Any]:
    """A baseline for others: bare aio-pika publish (confirms) → consume latency at ``rate``/s."""
    from shared.config import ServiceSettings

    with own_exchange("hop"):
        queue = await declare_queue(ServiceSettings(), BASELINE_CONSUMER, [BASELINE_ROUTING_KEY])
        side = Side("hop", queue, publish_bare, consume_bare)
        return (await measure(side, Plan(warmup=warmup, window=window, rate=rate), saturation=False))["steady"]


async def _run(quick: bool) -> Report:
    from services.orders.config import OrdersSettings
    from shared.config import ServiceSettings

    plan = Plan(warmup=1.5, window=3.0) if quick else Plan(warmup=3.0, window=20.0)
    pipeline_queue = await declare_queue(OrdersSettings(), PIPELINE_CONSUMER, [BenchPing.routing_key()])
    baseline_queue = await declare_queue(ServiceSettings(), BASELINE_CONSUMER, [BASELINE_ROUTING_KEY])
    report = Report(
        "1. Event pipeline: outbox → relay → broker → consumer with inbox",
        f"producer, relay and consumer in separate processes; saturation = producer closed loop, "
        f"{plan.per_tx} events/transaction, ≤ {plan.max_in_flight} in flight, {plan.window:g} s window; "
        f"latency = producer commit → consumer commit, 1 event/transaction at {plan.rate:g}/s for "
        f"{plan.window:g} s. Baseline: bare aio-pika, confirms + manual ack, same quorum queue setup.",
    )
    pipeline = await measure(
        Side("pipeline", pipeline_queue, produce_outbox, consume_with_inbox, relay=run_relay), plan
    )
    baseline = await measure(Side("baseline", baseline_queue, publish_bare, consume_bare), plan)
    report.details = {"plan": plan.__dict__, "pipeline": pipeline, "baseline": baseline}

    ps, bs = pipeline["saturation"], baseline["saturation"]
    report.add("sustained events/s (saturation)", ps["events_per_s"], "ev/s", bs["events_per_s"], Goal(">=", 1500))
    pl, bl = pipeline["steady"], baseline["steady"]
    report.add(f"p50 latency at {plan.rate:g}/s", pl["p50_ms"], "ms", bl["p50_ms"])
    report.add(f"p99 latency at {plan.rate:g}/s", pl["p99_ms"], "ms", bl["p99_ms"], Goal("<=", 25))

    end = ps["end"]
    report.notes.append(
        f"pipeline backlog at window end: {end['outbox_unsent']} outbox rows unsent, {end['queue_ready']} "
        f"ready in the queue, {end['produced'] - end['consumed']} in flight in all "
        f"(start of window: {ps['start']['produced'] - ps['start']['consumed']}); "
        f"in-flight growth {ps['in_flight_growth_per_s']:+.0f} ev/s; produced {ps['produced_per_s']:.0f} ev/s"
    )
    report.notes.append(
        f"baseline backlog at window end: {bs['end']['queue_ready']} ready in the queue, "
        f"{bs['end']['produced'] - bs['end']['consumed']} in flight"
    )
    report.notes.append("saturation " + describe(ps["cpu_cores"]))
    report.notes.append("baseline saturation " + describe(bs["cpu_cores"]))
    report.notes.append(
        f"latency samples: pipeline {pl['measured']} (max {pl['max_ms']:.1f} ms), "
        f"baseline {bl['measured']} (max {bl['max_ms']:.1f} ms); at {plan.rate:g}/s " + describe(pl["cpu_cores"])
    )
    await verify_exactly_once(report, pipeline)
    return report


async def verify_exactly_once(report: Report, pipeline: dict[str, Any]) -> None:
    """Every event produced has exactly one inbox row, and the outbox is fully sent."""
    admin = await admin_connection()
    try:
        inbox = await admin.fetchval("SELECT count(*) FROM orders.inbox WHERE consumer = $1", PIPELINE_CONSUMER)
        unsent = await admin.fetchval("SELECT count(*) FROM contracts.outbox WHERE sent_at IS NULL")
        outbox = await admin.fetchval("SELECT count(*) FROM contracts.outbox")
    finally:
        await admin.close()
    produced = pipeline["total_produced"]
    report.details["check"] = {"produced": produced, "outbox_rows": outbox, "unsent": unsent, "inbox_rows": inbox}
    if inbox != produced or outbox != produced or unsent:
        report.error = (
            f"events lost or duplicated: produced {produced}, outbox {outbox} ({unsent} unsent), inbox {inbox}"
        )
        return
    report.notes.append(f"check: {produced} events produced, {outbox} outbox rows all sent, {inbox} inbox rows")
