"""Event types and the CloudEvents 1.0 envelope.

Every event type is declared once, as a frozen pydantic model registered by its type name::

    class ContractSigned(Event, type="contract.signed.v1"): ...

Declaring a second model with the same type name fails at import. Event data ignores
unknown fields when parsed, so producers may add optional fields without breaking older
consumers; a breaking change is a new ``.vN`` type.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"

EVENT_TYPES: dict[str, type[Event]] = {}


class Event(BaseModel):
    """The ``data`` of one event type."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]

    def __init_subclass__(cls, *, type: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is None:
            raise TypeError(f"{cls.__name__} must declare its event type: class X(Event, type='a.b.v1')")
        if type in EVENT_TYPES:
            raise TypeError(f"event type {type!r} is declared twice ({EVENT_TYPES[type].__name__}, {cls.__name__})")
        cls.event_type = type
        EVENT_TYPES[type] = cls

    @classmethod
    def routing_key(cls) -> str:
        return cls.event_type


class CloudEvent(BaseModel):
    """CloudEvents 1.0 structured-mode envelope with Salesline's extensions."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str
    type: str
    time: datetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = None
    causationid: str | None = None
    # Per-aggregate sequence number (CloudEvents "sequence" extension), so consumers can
    # detect reordering. Carried as an integer.
    sequence: int | None = None
    traceparent: str | None = None

    def typed_data(self) -> Event:
        """The data parsed as its registered event model (KeyError for an unknown type)."""
        return EVENT_TYPES[self.type].model_validate(self.data)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def make_envelope(
    event: Event,
    *,
    source: str,
    subject: str | None,
    sequence: int | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    event_id = uuid.uuid4()
    return CloudEvent(
        id=event_id,
        source=source,
        type=event.event_type,
        time=datetime.now(UTC),
        subject=subject,
        data=event.model_dump(mode="json"),
        # An event that starts a chain correlates with itself.
        correlationid=correlation_id or str(event_id),
        causationid=causation_id,
        sequence=sequence,
        traceparent=traceparent,
    )
