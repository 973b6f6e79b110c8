"""Request and response bodies of the leads API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from services.leads.domain import DecisionTimeframe, LeadSource, NeedFit
from shared.api import ApiModel, ApiResponse, Currency, Money


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
    owner_id: str
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
