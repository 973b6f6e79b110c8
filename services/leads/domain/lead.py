"""The lead aggregate: a prospective customer as a rep or a form registered it.

Ownership follows the first-registered rule: whoever registered the customer first (any of
its match keys) owns it; a later registration by another rep still creates the lead, linked
to the earlier one, owned by the first owner, with ``ownership_conflict`` set (the conflict
itself is recorded by the handler). A sales manager can override the owner with a reason.
The grade is recomputed from the grading rules whenever budget, timeframe or need fit change.

A lead without an owner (``owner_id`` None) is in the public pool. It gets an owner by the
assignment rules, by a manager's hand or by a rep's claim (``lead.assigned``), and goes back to
the pool when its rep releases it or makes no first contact in time (``lead.returned_to_pool``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.leads.domain.grading import DecisionTimeframe, Grade, GradingInputs, GradingRules, NeedFit
from shared.domain import Aggregate, DomainError, InvalidTransition
from shared.events import LeadAssigned, LeadCreated, LeadGraded, LeadMerged, LeadOwnerChanged, LeadReturnedToPool


class LeadSource(StrEnum):
    WEB_FORM = "web_form"
    ONLINE_AD = "online_ad"
    SEARCH_MARKETING = "search_marketing"
    SOCIAL_MEDIA = "social_media"
    TRADE_SHOW = "trade_show"
    REFERRAL = "referral"
    PARTNER = "partner"
    IMPORT = "import"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where the lead came from: campaign and UTM parameters, kept as given."""

    campaign: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None


@dataclass(eq=False)
class Lead(Aggregate):
    id: uuid.UUID
    owner_id: str | None  # None: in the public pool
    registered_by: str
    source: LeadSource
    created_at: datetime
    company_name: str | None = None
    contact_name: str | None = None
    phone: str | None = None  # E.164
    email: str | None = None  # normalised, lower-case
    uscc: str | None = None  # unified social credit code, compact
    region: str | None = None
    industry: str | None = None
    attribution: Attribution = field(default_factory=Attribution)
    budget: Decimal | None = None
    currency: str = "CNY"
    decision_timeframe: DecisionTimeframe = DecisionTimeframe.UNKNOWN
    need_fit: NeedFit = NeedFit.UNKNOWN
    grade: Grade = Grade.C
    grading_rules_version: int = 0
    duplicate_of_lead_id: uuid.UUID | None = None
    matched_account_id: uuid.UUID | None = None
    ownership_conflict: bool = False
    assigned_at: datetime | None = None  # when the current owner got it by assignment or claim
    first_contacted_at: datetime | None = None  # the current owner's first logged contact
    pooled_at: datetime | None = None  # when it entered the pool (None while owned)
    returned_from: str | None = None  # the rep it was last taken from for want of a first contact
    team: str | None = None  # the owner's sales team
    merged_into_lead_id: uuid.UUID | None = None  # merged into that lead (its history stays here)

    @property
    def grading_inputs(self) -> GradingInputs:
        return GradingInputs(budget=self.budget, timeframe=self.decision_timeframe, need_fit=self.need_fit)

    @classmethod
    def register(
        cls,
        rules: GradingRules,
        *,
        assigned_by: str | None = None,
        first_contact_due_at: datetime | None = None,
        **fields: object,
    ) -> Lead:
        """A new lead, graded by ``rules``; records ``lead.created`` (and ``lead.assigned`` when
        the assignment rules chose its owner, ``assigned_by`` being who registered it)."""
        lead = cls(**fields)  # type: ignore[arg-type]
        if lead.owner_id is None:
            lead.pooled_at = lead.created_at
        lead.grade = rules.grade(lead.grading_inputs)
        lead.grading_rules_version = rules.version
        lead.record(
            LeadCreated(
                lead_id=lead.id,
                source=lead.source.value,
                owner_id=lead.owner_id or "",
                in_pool=lead.owner_id is None,
                registered_by=lead.registered_by,
                company_name=lead.company_name,
                contact_name=lead.contact_name,
                region=lead.region,
                industry=lead.industry,
                grade=lead.grade.value,
                campaign=lead.attribution.campaign,
                duplicate_of_lead_id=lead.duplicate_of_lead_id,
                matched_account_id=lead.matched_account_id,
                ownership_conflict=lead.ownership_conflict,
            )
        )
        if assigned_by is not None and lead.owner_id is not None:
            lead.assigned_at = lead.created_at
            lead._record_assignment(None, BY_RULES, assigned_by, first_contact_due_at)
        return lead

    def qualify(
        self,
        rules: GradingRules,
        *,
        budget: Decimal | None,
        currency: str,
        timeframe: DecisionTimeframe,
        need_fit: NeedFit,
    ) -> None:
        """New grading inputs: the grade is recomputed; ``lead.graded`` when it changes."""
        self.budget, self.currency, self.decision_timeframe, self.need_fit = budget, currency, timeframe, need_fit
        previous = self.grade
        self.grade = rules.grade(self.grading_inputs)
        self.grading_rules_version = rules.version
        if self.grade != previous:
            self.record(
                LeadGraded(
                    lead_id=self.id,
                    grade=self.grade.value,
                    previous_grade=previous.value,
                    rules_version=rules.version,
                )
            )

    def override_owner(self, new_owner: str, *, by: str, reason: str, team: str | None = None) -> None:
        """A sales manager's decision over the first-registered rule (``team``: the new owner's)."""
        if not reason.strip():
            raise DomainError("an owner override needs a reason")
        if new_owner == self.owner_id:
            raise DomainError(f"{new_owner} already owns this lead")
        previous, self.owner_id, self.team, self.pooled_at = self.owner_id, new_owner, team, None
        self.ownership_conflict = False
        self.record(
            LeadOwnerChanged(
                lead_id=self.id, owner_id=new_owner, previous_owner_id=previous or "", changed_by=by, reason=reason
            )
        )

    # -- assignment, pool, first contact ---------------------------------------------------

    @property
    def in_pool(self) -> bool:
        return self.owner_id is None and self.merged_into_lead_id is None

    def assign(
        self,
        owner_id: str,
        *,
        team: str | None,
        method: str,
        by: str,
        now: datetime,
        first_contact_due_at: datetime | None,
    ) -> None:
        """``owner_id`` owns the lead from ``now`` (by the rules, by hand or by claim) and owes it a
        first contact (the clock starts again, also for a lead they had before)."""
        if owner_id == self.owner_id:
            raise InvalidTransition(f"{owner_id} already owns this lead")
        if self.merged_into_lead_id is not None:
            raise InvalidTransition("the lead was merged into another: assign that one")
        previous = self.owner_id
        self.owner_id, self.team, self.assigned_at = owner_id, team, now
        self.pooled_at, self.first_contacted_at = None, None
        self._record_assignment(previous, method, by, first_contact_due_at)

    def _record_assignment(self, previous: str | None, method: str, by: str, due: datetime | None) -> None:
        assert self.owner_id is not None and self.assigned_at is not None
        self.record(
            LeadAssigned(
                lead_id=self.id,
                owner_id=self.owner_id,
                previous_owner_id=previous,
                method=method,
                assigned_by=by,
                region=self.region,
                industry=self.industry,
                first_contact_due_at=due,
                assigned_at=self.assigned_at,
            )
        )

    def return_to_pool(self, *, reason: str, by: str, now: datetime, note: str | None = None) -> None:
        """Back to the pool: released by its rep (with a reason) or taken for want of a first contact."""
        if self.owner_id is None:
            raise InvalidTransition("the lead is already in the pool")
        previous, self.owner_id, self.team = self.owner_id, None, None
        self.pooled_at, self.assigned_at = now, None
        if reason == NO_FIRST_CONTACT:
            self.returned_from = previous
        self.record(
            LeadReturnedToPool(
                lead_id=self.id,
                previous_owner_id=previous,
                reason=reason,
                note=note,
                returned_by=by,
                region=self.region,
                industry=self.industry,
                returned_at=now,
            )
        )

    def contacted(self, at: datetime) -> bool:
        """A logged contact; True when it is the current owner's first (it stops the first-contact clock)."""
        if self.first_contacted_at is not None or self.owner_id is None:
            return False
        self.first_contacted_at = at
        self.version += 1  # no event of its own (the activity announces it), but a new ETag
        return True

    def awaits_first_contact(self, owner_id: str, assigned_at: datetime) -> bool:
        """Still owned by ``owner_id`` since ``assigned_at`` and never contacted: the 24 h rule applies."""
        return (
            self.owner_id == owner_id
            and self.assigned_at == assigned_at
            and self.first_contacted_at is None
            and self.merged_into_lead_id is None
        )

    def absorb(self, duplicate: Lead, *, by: str, reason: str | None, now: datetime) -> None:
        """Merge ``duplicate`` into this lead: it keeps its history, is marked merged and follows
        this lead's owner (out of the pool and of its rep's load)."""
        if duplicate.id == self.id:
            raise DomainError("a lead cannot be merged into itself")
        if self.merged_into_lead_id is not None:
            raise InvalidTransition("this lead was merged into another: merge into that one")
        if duplicate.merged_into_lead_id is not None:
            raise InvalidTransition("that lead was merged already")
        duplicate.merged_into_lead_id = self.id
        duplicate.owner_id, duplicate.team, duplicate.pooled_at = self.owner_id, self.team, None
        duplicate.version += 1  # the survivor's event tells; the duplicate still gets a new ETag
        self.record(
            LeadMerged(
                lead_id=self.id,
                merged_lead_id=duplicate.id,
                owner_id=self.owner_id,
                merged_by=by,
                reason=reason,
                merged_at=now,
            )
        )


# Why a lead went back to the pool.
RELEASED = "released"
NO_FIRST_CONTACT = "no_first_contact"
# How a lead got its owner.
BY_RULES, BY_HAND, BY_CLAIM = "rules", "manual", "claim"
