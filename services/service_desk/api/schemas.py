"""Request and response bodies of the service desk API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import EmailStr, Field, model_validator

from services.service_desk.domain import Channel, Priority, TicketType
from shared.api import ApiModel, ApiResponse, Money, SafeStr


class ContactRead(ApiResponse):
    name: str
    email: str | None = None
    phone: str | None = None


class SurveyRead(ApiResponse):
    id: uuid.UUID
    status: str
    version: int
    trigger: str
    order_id: uuid.UUID | None
    customer_id: str
    customer_name: str
    contact: ContactRead | None
    owner_id: str
    created_at: datetime
    reminded_at: datetime | None
    ticket_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    csat: int | None = None
    nps: int | None = None
    comment: str | None = None
    completed_at: datetime | None = None


class WarrantyRead(ApiResponse):
    id: uuid.UUID
    version: int
    order_id: uuid.UUID
    order_number: str
    line_no: int
    sku: str
    description: str
    serial_number: str | None
    quantity: Decimal
    customer_id: str
    owner_id: str
    warranty_months: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


class CoverageRead(ApiResponse):
    covered: bool
    reason: str = Field(description="covered, not_registered, expired or not_started")
    detail: str
    warranty: WarrantyRead | None


class ContactIn(ApiModel):
    name: SafeStr = Field(min_length=1, max_length=200)
    email: EmailStr | None = None
    phone: SafeStr | None = Field(default=None, max_length=40)


class TicketCreate(ApiModel):
    subject: SafeStr = Field(min_length=1, max_length=200)
    description: SafeStr = Field(default="", max_length=20_000)
    channel: Channel
    type: TicketType
    priority: Priority = Priority.P3
    group: SafeStr | None = Field(default=None, min_length=1, max_length=100, description="Default: by type")
    category: SafeStr | None = Field(default=None, max_length=100)
    customer_id: SafeStr = Field(min_length=1, max_length=100)
    customer_name: SafeStr = Field(min_length=1, max_length=200)
    contact: ContactIn | None = None
    order_id: uuid.UUID | None = None
    order_line_no: int | None = Field(
        default=None, ge=1, le=100_000, description="The delivered order line (with order_id), for unserialised items"
    )
    serial_number: SafeStr | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _line_needs_order(self) -> TicketCreate:
        if self.order_line_no is not None and self.order_id is None:
            raise ValueError("order_line_no needs order_id")
        return self


class TicketResolve(ApiModel):
    resolution: SafeStr = Field(min_length=1, max_length=20_000)
    article_ids: list[uuid.UUID] = Field(default=[], max_length=20, description="Knowledge-base articles used")


class TicketReopen(ApiModel):
    reason: SafeStr = Field(min_length=1, max_length=2000)


class TicketAssign(ApiModel):
    agent_id: SafeStr = Field(min_length=1, max_length=200)


class WarrantyCoverageRead(ApiResponse):
    covered: bool
    reason: str
    detail: str
    warranty_id: uuid.UUID | None


class SlaRead(ApiResponse):
    kind: str = Field(description="first_response or resolution")
    target_seconds: float = Field(description="The target in business seconds")
    used_seconds: float
    left_seconds: float = Field(description="Negative once breached")
    deadline: datetime | None = Field(description="When it breaches if nothing changes; null while paused or met")
    paused: bool
    met_at: datetime | None
    warned_at: datetime | None
    breached_at: datetime | None


class TicketRead(ApiResponse):
    id: uuid.UUID
    number: str
    version: int
    status: str
    subject: str
    description: str
    channel: str
    type: str
    priority: str
    group: str
    category: str | None
    complaint: bool
    customer_id: str
    customer_name: str
    contact: ContactRead | None
    order_id: uuid.UUID | None
    order_line_no: int | None = None
    serial_number: str | None
    assignee_id: str | None
    resolution: str | None
    close_reason: str | None
    reopen_count: int
    created_at: datetime
    updated_at: datetime
    first_responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla: list[SlaRead]
    sla_tier: str | None = Field(
        None, description="The customer tier (from its signed contracts) whose SLA policy set the targets"
    )
    repeat_of: uuid.UUID | None = Field(description="The same account's ticket of the same category within 30 days")
    warranty_coverage: WarrantyCoverageRead | None = None
    linked_article_ids: list[uuid.UUID] = []


class AgentPut(ApiModel):
    name: SafeStr = Field(min_length=1, max_length=200)
    groups: list[Annotated[SafeStr, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=50)
    capacity: int = Field(ge=0, le=1000, description="How many open tickets the agent takes at most")
    on_duty: bool = True


class AgentRead(ApiResponse):
    id: str
    version: int
    name: str
    groups: list[str]
    capacity: int
    on_duty: bool


class ArticleWrite(ApiModel):
    category: SafeStr = Field(min_length=1, max_length=100)
    title: SafeStr = Field(min_length=1, max_length=300)
    body: SafeStr = Field(min_length=1, max_length=100_000)


class ArticleVersionRead(ApiResponse):
    number: int
    title: str
    body: str
    category: str
    published_at: datetime
    published_by: str


class ArticleRead(ApiResponse):
    id: uuid.UUID
    version: int
    status: str
    category: str = Field(description="The draft's category")
    title: str = Field(description="The draft's title (may hold unpublished edits)")
    body: str
    author_id: str
    published: ArticleVersionRead | None = Field(description="The live version, if any")
    created_at: datetime
    updated_at: datetime


class ArticleDetail(ArticleRead):
    versions: list[ArticleVersionRead]


class ArticleHit(ApiResponse):
    id: uuid.UUID
    category: str
    title: str
    version: int = Field(description="The published version number")
    rank: float
    excerpt: str


class PartIn(ApiModel):
    sku: SafeStr = Field(min_length=1, max_length=100)
    description: SafeStr = Field(default="", max_length=500)
    quantity: int = Field(ge=1, le=100_000)
    unit_price: Money


class RepairStart(ApiModel):
    findings: SafeStr = Field(min_length=1, max_length=20_000)
    parts: list[PartIn] = Field(default=[], max_length=200)
    labour_cost: Money = Decimal("0.00")


class RepairReject(ApiModel):
    reason: SafeStr = Field(min_length=1, max_length=2000)


class PartRead(ApiResponse):
    sku: str
    description: str
    quantity: int
    unit_price: Money
    amount: Money


class RepairRead(ApiResponse):
    id: uuid.UUID
    version: int
    ticket_id: uuid.UUID
    ticket_number: str
    customer_id: str
    serial_number: str | None
    status: str
    under_warranty: bool
    findings: str | None
    parts: list[PartRead]
    currency: str
    labour_cost: Money
    parts_cost: Money
    total_cost: Money
    charged_amount: Money = Field(description="What the customer pays: zero under warranty")
    rejections: list[str]
    accepted_at: datetime | None
    accepted_by: str | None = Field(None, description="customer (through their link) or the agent who recorded it")
    acceptance_expires_at: datetime | None = Field(None, description="Until when the customer's link works")
    created_at: datetime
    updated_at: datetime


class EscalationRead(ApiResponse):
    id: uuid.UUID
    version: int
    status: str = Field(description="open or acknowledged")
    level: str = Field(description="warning (to the assignee) or breach (to the support lead)")
    escalated_to: str = Field(description="support_lead or assignee")
    ticket_id: uuid.UUID
    ticket_number: str
    kind: str = Field(description="first_response or resolution")
    priority: str
    group: str
    assignee_id: str | None
    deadline: datetime
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None


class EscalationAcknowledge(ApiModel):
    note: SafeStr | None = Field(None, max_length=2000, description="What the lead did about it")
