"""Request and event context carried through a call: correlation and causation ids, trace."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class EventContext:
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    request_id: str | None = None


current_context: ContextVar[EventContext] = ContextVar("salesline_event_context", default=EventContext())  # noqa: B039 - frozen, so immutable
