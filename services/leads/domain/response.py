"""The response report: how fast reps make the first contact on the leads they are given.

Its unit is an *assignment* (a lead given to a rep by the rules, by a manager or by a claim
from the pool): a lead given twice counts twice, once for each rep. For the assignments made in
the period: how many got a first contact, the median and 90th percentile of the time from
assignment to that contact, the share contacted by their deadline (the first-contact window in
force when they were assigned, 24 h by default) out of all assigned, how many are still open
without a contact, and how many ended in the pool: taken back for want of a contact
(automatically) or released by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.leads.domain.opportunity import HUNDRED
from shared.money import money

# How an assignment ended, besides the two ways back to the pool (RELEASED, NO_FIRST_CONTACT).
REASSIGNED = "reassigned"  # given to another rep directly
OWNER_CHANGED = "owner_changed"  # a manager's owner override
MERGED = "merged"  # the lead was merged into another


@dataclass(frozen=True, slots=True)
class ResponseCounts:
    """What the query counts over a group of assignments (seconds to first contact)."""

    assigned: int
    contacted: int
    median_seconds: float | None
    p90_seconds: float | None
    within_window: int
    uncontacted: int
    returned_no_contact: int
    released: int


@dataclass(frozen=True, slots=True)
class ResponseFigures:
    assigned: int
    contacted: int
    median_hours: Decimal | None
    p90_hours: Decimal | None
    within_window: int
    within_window_pct: Decimal | None  # of those assigned
    uncontacted: int  # still with the rep, no contact yet
    returned_no_contact: int  # taken back to the pool automatically
    released: int  # given back to the pool by hand


def _hours(seconds: float | None) -> Decimal | None:
    return None if seconds is None else money(Decimal(str(seconds)) / 3600)


def figures(counts: ResponseCounts) -> ResponseFigures:
    return ResponseFigures(
        assigned=counts.assigned,
        contacted=counts.contacted,
        median_hours=_hours(counts.median_seconds),
        p90_hours=_hours(counts.p90_seconds),
        within_window=counts.within_window,
        within_window_pct=money(Decimal(counts.within_window) * HUNDRED / counts.assigned) if counts.assigned else None,
        uncontacted=counts.uncontacted,
        returned_no_contact=counts.returned_no_contact,
        released=counts.released,
    )


@dataclass(frozen=True, slots=True)
class Response:
    reps: tuple[tuple[str, ResponseFigures], ...]  # by rep id
    total: ResponseFigures


EMPTY = ResponseCounts(0, 0, None, None, 0, 0, 0, 0)


def response(per_rep: dict[str, ResponseCounts], total: ResponseCounts | None) -> Response:
    return Response(
        reps=tuple((rep, figures(counts)) for rep, counts in sorted(per_rep.items())),
        total=figures(total or EMPTY),
    )
