"""Request and response bodies of accounts, contacts, conversion, opportunities and quotes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from services.leads.api.schemas import AccountRead
from services.leads.domain.account import AccountClassification, AccountTier
from services.leads.domain.opportunity import Stage
from shared.api import ApiModel, ApiResponse, CurrencyCode, Money

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]


class ContactCreate(ApiModel):
    name: Name
    title: Name | None = None
    phone: Annotated[str, Field(min_length=3, max_length=40)] | None = None
    email: Annotated[str, Field(min_length=3, max_length=320)] | None = None


class ContactRead(ApiResponse):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    title: str | None
    phone: str | None = Field(description="E.164")
    email: str | None
    created_at: datetime


class AccountChange(ApiModel):
    """Classify and/or tier the account (a new tier restarts the follow-up reminder)."""

    classification: AccountClassification | None = None
    tier: AccountTier | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> AccountChange:
        if self.classification is None and self.tier is None:
            raise ValueError("give classification, tier or both")
        return self


class LeadConversion(ApiModel):
    """Everything is optional: names default to the lead's, the amount to its budget."""

    account_name: Name | None = None
    contact_name: Name | None = None
    contact_title: Name | None = None
    opportunity_name: Name | None = None
    amount: Money | None = None
    currency: CurrencyCode | None = None
    expected_close_date: date | None = None
    tier: AccountTier = AccountTier.NORMAL


class OpportunityRead(ApiResponse):
    id: uuid.UUID
    version: int
    account_id: uuid.UUID
    contact_id: uuid.UUID | None
    lead_id: uuid.UUID | None
    name: str
    owner_id: str
    team: str | None
    region: str | None
    source: str | None
    stage: Stage
    probability: Percent
    amount: Money
    currency: str
    weighted_value: Money = Field(description="amount * probability / 100")
    expected_close_date: date | None
    lost_reason: str | None
    accepted_quote_id: uuid.UUID | None
    stage_entered_at: datetime
    closed_at: datetime | None
    created_at: datetime


class ConversionRead(ApiResponse):
    lead_id: uuid.UUID
    account: AccountRead
    contact: ContactRead
    opportunity: OpportunityRead


class OpportunityChange(ApiModel):
    name: Name | None = None
    amount: Money | None = None
    currency: CurrencyCode | None = None
    probability: Percent | None = None
    expected_close_date: date | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> OpportunityChange:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class StageChange(ApiModel):
    stage: Stage
    lost_reason: Reason | None = Field(None, description="Required when the stage is lost")


Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Quantity = Annotated[Decimal, Field(gt=0, le=Decimal("1000000000"), max_digits=14, decimal_places=3)]


class QuoteLineCreate(ApiModel):
    sku: Sku
    name: Name
    quantity: Quantity
    unit_price: Money


class QuoteCreate(ApiModel):
    lines: Annotated[list[QuoteLineCreate], Field(min_length=1, max_length=500)]
    valid_until: date
    extra_discount_pct: Percent = Field(Decimal(0), description="Limited by your discount authority")
    currency: CurrencyCode | None = Field(None, description="Defaults to the opportunity's")
    payment_terms: Name | None = None
    delivery_address: Reason | None = None


class QuoteLineRead(ApiResponse):
    line_no: int
    sku: str
    name: str
    quantity: Decimal
    unit_price: Money
    volume_discount_pct: Percent
    list_amount: Money
    amount: Money = Field(description="After the volume discount")


class QuoteRead(ApiResponse):
    id: uuid.UUID
    version: int
    number: str
    opportunity_id: uuid.UUID
    account_id: uuid.UUID
    owner_id: str
    status: str
    currency: str
    lines: list[QuoteLineRead]
    subtotal_amount: Money = Field(description="Sum of the line amounts")
    extra_discount_pct: Percent
    discount_amount: Money
    total_amount: Money
    valid_until: date
    price_rules_version: int
    discount_policy_version: str
    payment_terms: str | None
    delivery_address: str | None
    created_by: str
    created_at: datetime
    accepted_by: str | None
    accepted_at: datetime | None


RepId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Weight = Annotated[Decimal, Field(gt=0, le=Decimal("1000000"), max_digits=12, decimal_places=4)]


class RepShare(ApiModel):
    rep_id: RepId
    weight: Weight = Field(Decimal(1), description="Relative share of the team target (equal by default)")


class TeamTargetCreate(ApiModel):
    team: Name
    region: Name | None = Field(None, description="Defaults to your token's region")
    period: Annotated[str, StringConstraints(pattern=r"^\d{4}(-(\d{2}|Q[1-4]))?$")] = Field(
        description="2026-11 (month), 2026-Q4 (quarter) or 2026 (year)", examples=["2026-Q4"]
    )
    currency: CurrencyCode = "CNY"
    amount: Money
    reps: Annotated[list[RepShare], Field(min_length=1, max_length=500)]


class TargetRead(ApiResponse):
    id: uuid.UUID
    scope: str = Field(description="team or rep")
    team: str
    region: str | None
    owner_id: str = Field(description="The rep (rep targets) or who set the team target")
    parent_id: uuid.UUID | None = Field(description="The team target a rep target was decomposed from")
    period_kind: str
    period: str
    starts_on: date
    ends_on: date = Field(description="Exclusive")
    currency: str
    amount: Money
    achieved_amount: Money = Field(description="Signed in the period (contract.signed), in this currency")
    achievement_pct: Decimal
    created_by: str
    created_at: datetime


class TimelineEntry(ApiResponse):
    at: datetime
    id: str = Field(description="The activity's id or the event's id")
    source: str = Field(description="activity (logged here) or event (announced by another service)")
    type: str = Field(description="call, visit, … or contract.signed, order.delivered, ticket.opened, survey.completed")
    title: str
    reference: str | None = Field(description="Contract, order or ticket number; survey id")
    details: dict


class StageFiguresRead(ApiResponse):
    stage: Stage
    count: int = Field(description="Opportunities standing in the stage now")
    value: Money = Field(description="Their amount")
    reached: int = Field(description="Opportunities that ever entered the stage")
    conversion_pct: Decimal | None = Field(
        description="Of those that reached it, the share that reached the next stage"
    )
    avg_hours_in_stage: Decimal | None = Field(description="Average of the stays in the stage that ended")


class FunnelRead(ApiResponse):
    currency: str
    period: str | None
    stages: list[StageFiguresRead]
    win_rate_pct: Decimal | None = Field(description="won / (won + lost)")
    won_value: Money
    lost_value: Money


class ResponseFiguresRead(ApiResponse):
    assigned: int = Field(description="Assignments made in the period (a lead given twice counts twice)")
    contacted: int = Field(description="Of those, how many got a first contact")
    median_hours: Decimal | None = Field(description="Median time from assignment to first contact")
    p90_hours: Decimal | None = Field(description="90th percentile of the time from assignment to first contact")
    within_window: int = Field(description="Contacted by the first-contact deadline (24 h by default)")
    within_window_pct: Decimal | None = Field(description="within_window / assigned")
    uncontacted: int = Field(description="Still with the rep, no contact yet")
    returned_no_contact: int = Field(description="Taken back to the pool for want of a first contact")
    released: int = Field(description="Released to the pool by hand")


class RepResponseRead(ResponseFiguresRead):
    rep_id: str


class ResponseReportRead(ApiResponse):
    period: str | None
    reps: list[RepResponseRead]
    total: ResponseFiguresRead
