"""The lead aggregate: a prospective customer as a rep or a form registered it.

Ownership follows the first-registered rule: whoever registered the customer first (any of
its match keys) owns it; a later registration by another rep still creates the lead, linked
to the earlier one, owned by the first owner, with ``ownership_conflict`` set (the conflict
itself is recorded by the handler). A sales manager can override the owner with a reason.
The grade is recomputed from the grading rules whenever budget, timeframe or need fit change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.leads.domain.grading import DecisionTimeframe, Grade, GradingInputs, GradingRules, NeedFit
from shared.domain import Aggregate, DomainError
from shared.events import LeadCreated, LeadGraded, LeadOwnerChanged


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
    owner_id: str
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

    @property
    def grading_inputs(self) -> GradingInputs:
        return GradingInputs(budget=self.budget, timeframe=self.decision_timeframe, need_fit=self.need_fit)

    @classmethod
    def register(cls, rules: GradingRules, **fields: object) -> Lead:
        """A new lead, graded by ``rules``; records ``lead.created``."""
        lead = cls(**fields)  # type: ignore[arg-type]
        lead.grade = rules.grade(lead.grading_inputs)
        lead.grading_rules_version = rules.version
        lead.record(
            LeadCreated(
                lead_id=lead.id,
                source=lead.source.value,
                owner_id=lead.owner_id,
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

    def override_owner(self, new_owner: str, *, by: str, reason: str) -> None:
        """A sales manager's decision over the first-registered rule."""
        if not reason.strip():
            raise DomainError("an owner override needs a reason")
        if new_owner == self.owner_id:
            raise DomainError(f"{new_owner} already owns this lead")
        previous, self.owner_id = self.owner_id, new_owner
        self.ownership_conflict = False
        self.record(
            LeadOwnerChanged(
                lead_id=self.id, owner_id=new_owner, previous_owner_id=previous, changed_by=by, reason=reason
            )
        )
