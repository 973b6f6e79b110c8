"""OpenTelemetry trace export, on only when an OTLP endpoint is configured.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, each
process sets up the SDK once: a ``TracerProvider`` whose ``service.name`` is
``salesline-<service>`` (``-worker`` for a worker), a ``BatchSpanProcessor`` and the OTLP/HTTP
(protobuf) exporter. Everything else comes from the standard ``OTEL_*`` variables (sampler,
batch sizes, headers, timeout, compression, ``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_SDK_DISABLED``
and ``OTEL_TRACES_EXPORTER=none`` turn it off). Without an endpoint :func:`tracer` returns
None, the SDK is never imported and callers keep their plain W3C path
(:func:`shared.context.child_traceparent`).

Spans are started from our own trace context, not OpenTelemetry's implicit one:
:func:`start_span` takes the parent as a ``traceparent`` string and returns the new span's,
which the caller puts in ``shared.context.current_context``. So the ids in the logs, in the
events' ``traceparent`` and in the exported spans are the same ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from shared.context import child_traceparent, envelope_traceparent, valid_traceparent

log = logging.getLogger("salesline.telemetry")

__all__ = [
    "PUBLISH_HEADER",
    "Link",
    "PublishSpans",
    "Span",
    "SpanKind",
    "Status",
    "StatusCode",
    "child_span",
    "export_configured",
    "fail",
    "link_to",
    "shutdown",
    "start_span",
    "tracer",
]

# One provider per process name; a test running several services in one process gets several.
_providers: dict[str, object] = {}
_tracers: dict[str, trace.Tracer] = {}


def export_configured() -> bool:
    """True when the environment asks for OTLP trace export."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def tracer(service: str, *, worker: bool = False) -> trace.Tracer | None:
    """The tracer of process ``salesline-<service>[-worker]``, set up on first use; None when export is off."""
    if not export_configured():
        return None
    name = f"salesline-{service}-worker" if worker else f"salesline-{service}"
    found = _tracers.get(name)
    if found is None:
        found = _tracers[name] = _set_up(name)
    return found


def _set_up(name: str) -> trace.Tracer:
    # Imported here: without an endpoint the SDK and the exporter are never loaded.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        log.warning("OTLP protocol %s is not supported here; exporting with http/protobuf", protocol)
    # Our name wins over OTEL_SERVICE_NAME: one shared environment names every process alike.
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the batching from OTEL_BSP_*.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _providers[name] = provider
    log.info("OpenTelemetry trace export on for %s", name)
    return provider.get_tracer("salesline")


def shutdown() -> None:
    """Export what is buffered and forget every provider (at process exit; tests between runs)."""
    providers = list(_providers.values())
    _providers.clear()
    _tracers.clear()
    for provider in providers:
        provider.shutdown()  # type: ignore[attr-defined]


def force_flush(timeout_millis: int = 5000) -> None:
    for provider in list(_providers.values()):
        provider.force_flush(timeout_millis)  # type: ignore[attr-defined]


def _span_context(traceparent: str | None) -> SpanContext | None:
    if not (traceparent := valid_traceparent(traceparent)):
        return None
    return SpanContext(
        trace_id=int(traceparent[3:35], 16),
        span_id=int(traceparent[36:52], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(traceparent[53:55], 16)),
    )


def traceparent_of(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def link_to(traceparent: str | None) -> list[Link]:
    """A link to the span ``traceparent`` names (e.g. the producer of a message), if valid."""
    context = _span_context(traceparent)
    return [Link(context)] if context is not None else []


def start_span(
    tracer: trace.Tracer,
    name: str,
    kind: SpanKind,
    parent: str | None,
    attributes: dict[str, str | int] | None = None,
    links: Sequence[Link] = (),
) -> tuple[Span, str]:
    """A span whose parent is the ``parent`` traceparent (a new trace without one), and its own
    ``traceparent`` to carry on. The caller ends it. A span the sampler drops still has ids:
    its traceparent says "not sampled" downstream."""
    parent_context = _span_context(parent)
    # An explicit empty Context: never OpenTelemetry's implicit current span.
    context = trace.set_span_in_context(NonRecordingSpan(parent_context)) if parent_context else Context()
    span = tracer.start_span(name, context=context, kind=kind, attributes=attributes, links=links)
    return span, traceparent_of(span)


def child_span(tracer: trace.Tracer | None, name: str, parent: str | None) -> tuple[Span | None, str]:
    """An internal span in ``parent``'s trace and its traceparent; without export, no span and
    :func:`shared.context.child_traceparent` (a new span id all the same)."""
    if tracer is None:
        return None, child_traceparent(parent)
    return start_span(tracer, name, SpanKind.INTERNAL, parent)


def fail(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc`` (type and message, as our logs have them)."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


# The AMQP header with the relay's publish span; the consumer span links to it.
PUBLISH_HEADER = "traceparent"


class PublishSpans:
    """The outbox relay's producer spans for one batch, one per row, each a child of the span
    that recorded the event (the ``traceparent`` in its envelope). Ended when the confirms are in."""

    def __init__(self, tracer: trace.Tracer, exchange: str, rows: Sequence) -> None:
        self._spans: list[tuple[Span, str]] = [
            start_span(
                tracer,
                f"publish {row.event_type}",
                SpanKind.PRODUCER,
                envelope_traceparent(row.envelope),
                {
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": exchange,
                    "messaging.rabbitmq.destination.routing_key": row.event_type,
                    "messaging.message.id": str(row.event_id),
                },
            )
            for row in rows
        ]

    def headers(self, index: int) -> dict[str, str]:
        return {PUBLISH_HEADER: self._spans[index][1]}

    def end(self, results: Sequence[object]) -> None:
        """``results`` as ``asyncio.gather(..., return_exceptions=True)`` gave them, row by row."""
        for (span, _), result in zip(self._spans, results, strict=True):
            if isinstance(result, BaseException):
                fail(span, result)
            span.end()
