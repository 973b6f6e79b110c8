"""Request and response bodies of the leads API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from services.leads.domain import ActivityKind, Attribution, DecisionTimeframe, LeadSource, NeedFit, RepStatus
from services.leads.domain.behaviour import InteractionType
from shared.api import ApiModel, ApiResponse, Currency, Instant, Money, SafeStr


class AccountRead(ApiResponse):
    id: uuid.UUID
    version: int
    customer_id: str
    name: str
    owner_id: str
    classification: str
    region: str | None
    signed_contracts: int
    created_at: datetime
    tier: str = Field(description="high_value: weekly follow-up; normal: monthly")
    team: str | None
    lead_id: uuid.UUID | None = Field(description="The lead it was converted from")
    next_follow_up_at: datetime | None


def _text(max_length: int) -> object:
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)]


Text100 = _text(100)
Text200 = _text(200)
Text500 = _text(500)


class LeadCreate(ApiModel):
    """A lead as a rep (or an integration) registers it. At least one of ``company_name``,
    ``phone`` and ``email`` is required: they, and ``uscc``, identify the customer."""

    source: LeadSource
    company_name: Text500 | None = None
    contact_name: Text200 | None = None
    phone: Annotated[str, Field(min_length=3, max_length=40, examples=["138 0013 8000", "+86 13800138000"])] | None = (
        None
    )
    email: Annotated[str, Field(min_length=3, max_length=320)] | None = None
    uscc: Annotated[str, Field(min_length=18, max_length=40, examples=["91110000600037341L"])] | None = None
    region: Text100 | None = None
    industry: Text100 | None = None
    campaign: Text200 | None = None
    utm_source: Text200 | None = None
    utm_medium: Text200 | None = None
    utm_campaign: Text200 | None = None
    utm_term: Text200 | None = None
    utm_content: Text200 | None = None
    budget: Money | None = None
    currency: Currency
    decision_timeframe: DecisionTimeframe = DecisionTimeframe.UNKNOWN
    need_fit: NeedFit = NeedFit.UNKNOWN

    @model_validator(mode="after")
    def _identifies_someone(self) -> LeadCreate:
        if not (self.company_name or self.phone or self.email):
            raise ValueError("give at least one of company_name, phone and email")
        return self


class LeadQualification(ApiModel):
    """The grading inputs; the grade is recomputed from them."""

    budget: Money | None = None
    currency: Currency
    decision_timeframe: DecisionTimeframe
    need_fit: NeedFit


class OwnerOverride(ApiModel):
    owner_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    reason: Text500


class LeadRead(ApiResponse):
    id: uuid.UUID
    version: int
    owner_id: str | None = Field(description="None while the lead is in the public pool")
    registered_by: str
    source: str
    company_name: str | None
    contact_name: str | None
    phone: str | None = Field(description="E.164")
    email: str | None
    uscc: str | None
    region: str | None
    industry: str | None
    campaign: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    budget: Money | None
    currency: str
    decision_timeframe: str
    need_fit: str
    grade: str
    grading_rules_version: int
    duplicate_of_lead_id: uuid.UUID | None = Field(description="The earlier lead of the same customer")
    matched_account_id: uuid.UUID | None = Field(description="The existing account of the same customer")
    ownership_conflict: bool = Field(description="Another rep registered this customer first (and owns it)")
    created_at: datetime
    assigned_at: datetime | None = Field(description="When its owner got it by the rules, by hand or by claim")
    first_contacted_at: datetime | None = Field(description="Its owner's first logged contact since then")
    pooled_at: datetime | None = Field(description="Since when it waits in the public pool")
    merged_into_lead_id: uuid.UUID | None = Field(default=None, description="The lead this one was merged into")


class OwnershipConflictRead(ApiResponse):
    id: uuid.UUID
    lead_id: uuid.UUID
    owner_id: str
    claimant_id: str
    kind: str
    value: str
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


# -- sales reps and teams, pool, activities -----------------------------------------------------

Name = Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class SalesTeamPut(ApiModel):
    name: Name
    region: Label | None = None
    manager_id: Annotated[SafeStr, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, description="The sales manager's token subject"
    )


class SalesTeamRead(ApiResponse):
    id: str
    version: int
    name: str
    region: str | None
    manager_id: str | None
    created_at: datetime


class SalesRepPut(ApiModel):
    name: Name
    team_id: Label | None = None
    region: Label | None = Field(default=None, description="None: leads of any region")
    industries: list[Label] = Field(default_factory=list, max_length=50, description="Empty: any industry")
    capacity: int = Field(ge=0, le=100_000, description="How many leads the rep may own at once")
    status: RepStatus = RepStatus.ACTIVE


class SalesRepRead(ApiResponse):
    id: str
    version: int
    name: str
    team_id: str | None
    region: str | None
    industries: list[str]
    capacity: int
    status: str
    created_at: datetime


class LeadAssign(ApiModel):
    owner_id: Annotated[SafeStr, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, description="The rep to give it to; omitted: the assignment rules choose another rep"
    )


class LeadRelease(ApiModel):
    reason: Text500


class ActivityCreate(ApiModel):
    kind: ActivityKind
    occurred_at: Instant
    planned: bool = Field(
        default=False, description="A visit planned ahead (occurred_at: when): a manager approves it, a report follows"
    )
    outcome: Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    notes: Annotated[SafeStr, StringConstraints(max_length=10_000)] | None = None
    next_follow_up_at: Instant | None = Field(default=None, description="Raises a reminder for the owner when due")


class ActivityRead(ApiResponse):
    id: uuid.UUID
    lead_id: uuid.UUID | None
    account_id: uuid.UUID | None
    kind: str
    outcome: str | None
    notes: str | None
    logged_by: str
    occurred_at: datetime
    next_follow_up_at: datetime | None
    first_contact: bool = Field(description="The owner's first contact since the lead was assigned")
    created_at: datetime
    status: str = Field(description="done; for planned visits planned, approved or rejected until reported")
    reviewed_by: str | None = None
    reported_at: datetime | None = None


# -- web-to-lead forms -------------------------------------------------------------------------


class LeadFormPut(ApiModel):
    name: Name
    source: LeadSource = LeadSource.WEB_FORM
    campaign: Text200 | None = None
    region: Label | None = None
    industry: Label | None = None
    rate_limit_per_minute: int = Field(default=60, ge=1, le=100_000, description="Submissions per minute")
    active: bool = True


class LeadFormRead(ApiResponse):
    id: str
    version: int
    name: str
    source: str
    campaign: str | None
    region: str | None
    industry: str | None
    rate_limit_per_minute: int
    active: bool
    created_at: datetime
    api_key: str | None = Field(
        default=None, description="Shown once, when the form is created or its key rotated: send it as X-Api-Key"
    )


class LeadSubmission(ApiModel):
    """What a public web form posts. ``website`` is a honeypot: hidden from people, filled by bots."""

    company_name: Text500 | None = None
    contact_name: Text200 | None = None
    phone: Annotated[str, Field(min_length=3, max_length=40)] | None = None
    email: Annotated[str, Field(min_length=3, max_length=320)] | None = None
    region: Text100 | None = None
    industry: Text100 | None = None
    campaign: Text200 | None = None
    utm_source: Text200 | None = None
    utm_medium: Text200 | None = None
    utm_campaign: Text200 | None = None
    utm_term: Text200 | None = None
    utm_content: Text200 | None = None
    website: Annotated[str, Field(max_length=2000)] | None = Field(default=None, description="Leave empty (honeypot)")

    @model_validator(mode="after")
    def _identifies_someone(self) -> LeadSubmission:
        if not (self.company_name or self.phone or self.email):
            raise ValueError("give at least one of company_name, phone and email")
        return self


class SubmissionReceipt(ApiResponse):
    received: bool = True


# -- behaviour score -----------------------------------------------------------------------------


class InteractionCreate(ApiModel):
    type: InteractionType
    occurred_at: Instant


class InteractionRead(ApiResponse):
    id: uuid.UUID
    type: str
    occurred_at: datetime
    recorded_by: str
    created_at: datetime


class BehaviourRead(ApiResponse):
    lead_id: uuid.UUID
    behaviour_score: int = Field(ge=0, le=100, description="Interaction points decayed to now, capped at 100")
    interactions: list[InteractionRead] = Field(default_factory=list)
    next_cursor: str | None = None


class LeadMerge(ApiModel):
    duplicate_id: uuid.UUID = Field(description="The lead merged into this one")
    reason: Text500 | None = None


class VisitReview(ApiModel):
    approved: bool
    note: Text500 | None = None


class VisitReport(ApiModel):
    outcome: Annotated[SafeStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    notes: Annotated[SafeStr, StringConstraints(max_length=10_000)] | None = None


def attribution_of(body: LeadCreate | LeadSubmission) -> Attribution:
    """The campaign and UTM fields a lead was sent with (a rep's or a web form's)."""
    return Attribution(
        campaign=body.campaign,
        utm_source=body.utm_source,
        utm_medium=body.utm_medium,
        utm_campaign=body.utm_campaign,
        utm_term=body.utm_term,
        utm_content=body.utm_content,
    )
