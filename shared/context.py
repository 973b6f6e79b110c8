"""Request and event context carried through a call: correlation and causation ids, trace.

Trace context is W3C ``traceparent`` (``00-<trace id>-<parent span id>-<flags>``). Every
request and every handled event is a span of its own: it keeps the trace id it received (or
starts a trace) and gets a new span id, and what it causes (the events it records, the
webhooks sent for them) carries that span as parent. So one trace id follows a request through
the outbox, the broker, the consumers and the webhooks, and every log line written meanwhile
names it (:func:`install_log_record_context`).
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ENVELOPE_TRACEPARENT_RE = re.compile(r'"traceparent"\s*:\s*"([^"\\]{1,64})"')
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class EventContext:
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    request_id: str | None = None

    @property
    def trace_id(self) -> str | None:
        return self.traceparent[3:35] if self.traceparent else None


current_context: ContextVar[EventContext] = ContextVar("salesline_event_context", default=EventContext())  # noqa: B039 - frozen, so immutable


def valid_traceparent(value: str | bytes | None) -> str | None:
    """A well-formed ``traceparent`` (lower-cased), else None: a bad one is dropped, not propagated."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    match = _TRACEPARENT_RE.fullmatch(value.strip().lower())
    if not match or match[1] == "ff" or match[2] == _ZERO_TRACE or match[3] == _ZERO_SPAN:
        return None
    return match[0]


def child_traceparent(parent: str | None) -> str:
    """A new span in ``parent``'s trace (same trace id and flags), or the root of a new sampled trace."""
    span = secrets.token_hex(8)
    if parent := valid_traceparent(parent):
        return f"00-{parent[3:35]}-{span}-{parent[53:55]}"
    return f"00-{secrets.token_hex(16)}-{span}-01"


def envelope_traceparent(body: str) -> str | None:
    """The valid ``traceparent`` of a serialised CloudEvents envelope, found without parsing it
    (the envelope's own attribute is its last field, so the last match)."""
    found = _ENVELOPE_TRACEPARENT_RE.findall(body)
    return valid_traceparent(found[-1]) if found else None


def stamp_log_record(record: logging.LogRecord) -> None:
    """Put the current request id, correlation id and trace id (``-`` outside one) on ``record``."""
    context = current_context.get()
    record.request_id = context.request_id or "-"
    record.correlation_id = context.correlation_id or "-"
    record.trace_id = context.trace_id or "-"


class _LogRecordContext:
    """Log record factory that stamps every record when it is made, whichever handler formats it."""

    def __init__(self, factory) -> None:
        self.factory = factory

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        record = self.factory(*args, **kwargs)
        stamp_log_record(record)
        return record


def install_log_record_context() -> None:
    """Idempotent: every log record from now on carries ``request_id``, ``correlation_id``, ``trace_id``."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _LogRecordContext):
        logging.setLogRecordFactory(_LogRecordContext(factory))
