"""The event catalog: the only contract between services (DESIGN.md section 3)."""

from shared.events.base import CONTENT_TYPE, EVENT_TYPES, CloudEvent, Event, make_envelope
from shared.events.catalog import *  # noqa: F403  (registers every event type)
from shared.events.catalog import __all__ as _catalog

__all__ = ["CONTENT_TYPE", "EVENT_TYPES", "CloudEvent", "Event", "make_envelope", *_catalog]
