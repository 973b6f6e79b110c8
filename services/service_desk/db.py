"""The service desk schema: tables and repositories (SQLAlchemy Core)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Column, ColumnElement, Index, Integer, Table, Text, select, true
from sqlalchemy.dialects.postgresql import JSONB, UUID

from services.service_desk.domain import Survey, SurveyStatus
from shared.auth import Principal
from shared.db import service_metadata, utc_timestamp
from shared.events import ContactInfo
from shared.repository import Repository, json_codec

metadata, platform_tables = service_metadata("service_desk")

SUPPORT_ROLES = frozenset({"support_agent", "support_lead"})

surveys = Table(
    "surveys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("trigger", Text, nullable=False),
    # One delivery survey per order, whatever arrives twice.
    Column("order_id", UUID(as_uuid=True), unique=True),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("contact", JSONB),
    Column("owner_id", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("reminded_at"),
    Index("ix_surveys_created_at_id", "created_at", "id"),
    Index("ix_surveys_owner_id_created_at_id", "owner_id", "created_at", "id"),
)

CONTACT = json_codec(ContactInfo | None)


class SurveyRepository(Repository[Survey]):
    table = surveys
    noun = "survey"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        if principal is not None and principal.roles & SUPPORT_ROLES:
            return true()
        return super().visible_to(principal)

    async def exists_for_order(self, order_id: uuid.UUID) -> bool:
        return (await self.uow.execute(select(surveys.c.id).where(surveys.c.order_id == order_id))).first() is not None

    def to_row(self, survey: Survey) -> dict[str, Any]:
        return {
            "id": survey.id,
            "status": survey.status.value,
            "version": survey.version,
            "trigger": survey.trigger,
            "order_id": survey.order_id,
            "customer_id": survey.customer_id,
            "customer_name": survey.customer_name,
            "contact": CONTACT.dump_python(survey.contact, mode="json"),
            "owner_id": survey.owner_id,
            "created_at": survey.created_at,
            "reminded_at": survey.reminded_at,
        }

    def from_row(self, row: Any) -> Survey:
        return Survey(
            id=row.id,
            status=SurveyStatus(row.status),
            version=row.version,
            trigger=row.trigger,
            order_id=row.order_id,
            customer_id=row.customer_id,
            customer_name=row.customer_name,
            contact=CONTACT.validate_python(row.contact),
            owner_id=row.owner_id,
            created_at=row.created_at,
            reminded_at=row.reminded_at,
        )
