"""Base for aggregates: pure Python, no SQLAlchemy, FastAPI or aio-pika.

An aggregate enforces its own state machine and records the events its changes produce;
the unit of work writes them to the outbox in the same transaction as the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.events.base import Event


class DomainError(Exception):
    """A rule of the domain refused the command (mapped to a 4xx problem by the HTTP layer)."""

    status = 422
    title = "Domain rule violated"


class NotFound(DomainError):
    """Also what another owner's object looks like (never a 403 that confirms it exists)."""

    status = 404
    title = "Not found"


class PreconditionFailed(DomainError):
    """The client's ``If-Match`` version, or the version a change was based on, is stale."""

    status = 412
    title = "Precondition failed"


class InvalidTransition(DomainError):
    status = 409
    title = "Invalid state transition"


@dataclass(eq=False)
class Aggregate:
    """Tracks ``version`` (bumped once per recorded event) and the events not yet published."""

    version: int = field(default=0, kw_only=True)
    pending_events: list[tuple[Event, int]] = field(default_factory=list, kw_only=True, repr=False)

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, "id"))  # noqa: B009

    def record(self, event: Event) -> None:
        self.version += 1
        self.pending_events.append((event, self.version))

    def take_events(self) -> list[tuple[Event, int]]:
        events, self.pending_events = self.pending_events, []
        return events
