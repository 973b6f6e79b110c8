"""The service desk schema: tables and repositories (SQLAlchemy Core)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    Computed,
    Index,
    Integer,
    Numeric,
    Sequence,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.service_desk.domain import (
    OPEN_STATUSES,
    Agent,
    Channel,
    Priority,
    Survey,
    SurveyStatus,
    Ticket,
    TicketStatus,
    TicketType,
    Warranty,
)
from services.service_desk.domain.article import Article, ArticleStatus, ArticleVersion, query_terms
from services.service_desk.domain.escalation import Escalation, EscalationLevel, EscalationStatus
from services.service_desk.domain.repair import Part, Repair, RepairStatus
from services.service_desk.domain.sla import FIRST_RESPONSE, RESOLUTION, SlaClock
from shared.auth import ADMIN, Principal
from shared.db import service_metadata, utc_timestamp
from shared.events import ContactInfo, ContractSigned, ContractTerminated
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
    # One CSAT survey per resolved ticket.
    Column("ticket_id", UUID(as_uuid=True), unique=True),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("contact", JSONB),
    Column("owner_id", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("reminded_at"),
    # SHA-256 of the customer's link token (the token itself is only ever in survey.sent).
    Column("token_hash", Text, unique=True),
    Column("reminder_token_hash", Text, unique=True),
    Column("products", ARRAY(Text), nullable=False, server_default="{}"),
    Column("team", Text),
    utc_timestamp("expires_at"),
    Column("csat", SmallInteger),
    Column("nps", SmallInteger),
    Column("comment", Text),
    utc_timestamp("completed_at"),
    CheckConstraint("csat BETWEEN 1 AND 5", name="csat_range"),
    CheckConstraint("nps BETWEEN 0 AND 10", name="nps_range"),
    Index("ix_surveys_created_at_id", "created_at", "id"),
    Index("ix_surveys_owner_id_created_at_id", "owner_id", "created_at", "id"),
)

warranties = Table(
    "warranties",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("order_number", Text, nullable=False),
    Column("line_no", Integer, nullable=False),
    # The serial number, or the line for unserialised items: a delivery registers each once.
    Column("unit", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("serial_number", Text),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("warranty_months", Integer, nullable=False),
    utc_timestamp("starts_at", nullable=False),
    utc_timestamp("ends_at", nullable=False),
    utc_timestamp("created_at", nullable=False),
    UniqueConstraint("order_id", "unit"),
    Index("ix_warranties_created_at_id", "created_at", "id"),
    Index("ix_warranties_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_warranties_serial_number_created_at_id", "serial_number", "created_at", "id"),
    Index("ix_warranties_order_id_created_at_id", "order_id", "created_at", "id"),
)

ticket_number_seq = Sequence("ticket_number_seq", metadata=metadata)

tickets = Table(
    "tickets",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("group", Text, nullable=False),
    Column("category", Text),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("contact", JSONB),
    Column("order_id", UUID(as_uuid=True)),
    Column("order_line_no", Integer),
    Column("serial_number", Text),
    Column("assignee_id", Text),
    Column("resolution", Text),
    Column("close_reason", Text),
    Column("reopen_count", Integer, nullable=False),
    Column("confirmation_token_hash", Text, unique=True),
    Column("sla", JSONB, nullable=False),
    Column("awaiting_response", Boolean, nullable=False),
    Column("repeat_of", UUID(as_uuid=True)),
    Column("sla_tier", Text),  # the customer tier whose SLA policy set the targets, if any
    Column("linked_article_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    Column("warranty_coverage", JSONB),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("updated_at", nullable=False),
    utc_timestamp("first_responded_at"),
    utc_timestamp("resolved_at"),
    utc_timestamp("closed_at"),
    Index("ix_tickets_created_at_id", "created_at", "id"),
    Index("ix_tickets_status_created_at_id", "status", "created_at", "id"),
    Index("ix_tickets_assignee_id_status", "assignee_id", "status"),
    Index("ix_tickets_customer_id_created_at_id", "customer_id", "created_at", "id"),
    Index("ix_tickets_customer_id_category_created_at", "customer_id", "category", "created_at"),
    Index("ix_tickets_order_id_created_at_id", "order_id", "created_at", "id"),
    Index("ix_tickets_group_created_at_id", "group", "created_at", "id"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Text, primary_key=True),  # the agent's token subject
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("groups", ARRAY(Text), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("on_duty", Boolean, nullable=False),
    utc_timestamp("created_at", nullable=False),
    CheckConstraint("capacity >= 0", name="capacity_non_negative"),
    Index("ix_agents_created_at_id", "created_at", "id"),
    Index("ix_agents_groups", "groups", postgresql_using="gin"),
)

kb_articles = Table(
    "kb_articles",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("author_id", Text, nullable=False),
    Column("published", JSONB),  # the live version: {number, title, body, category, published_at, published_by}
    # Search terms of the published version (domain/article.py), indexed as a tsvector.
    Column("search_terms", Text),
    Column(
        "search", TSVECTOR, Computed("to_tsvector('simple'::regconfig, coalesce(search_terms, ''))", persisted=True)
    ),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("updated_at", nullable=False),
    Index("ix_kb_articles_created_at_id", "created_at", "id"),
    Index("ix_kb_articles_category_created_at_id", "category", "created_at", "id"),
    Index("ix_kb_articles_status_created_at_id", "status", "created_at", "id"),
    Index("ix_kb_articles_search", "search", postgresql_using="gin"),
)

kb_article_versions = Table(
    "kb_article_versions",
    metadata,
    Column("article_id", UUID(as_uuid=True), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("category", Text, nullable=False),
    utc_timestamp("published_at", nullable=False),
    Column("published_by", Text, nullable=False),
)

repairs = Table(
    "repairs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("ticket_id", UUID(as_uuid=True), nullable=False),
    Column("ticket_number", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("serial_number", Text),
    Column("under_warranty", Boolean, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("findings", Text),
    Column("parts", JSONB, nullable=False),
    Column("labour_cost", Numeric(14, 2), nullable=False),
    Column("rejections", JSONB, nullable=False),
    utc_timestamp("accepted_at"),
    Column("accepted_by", Text),
    # SHA-256 of the customer's acceptance link token (the token is only ever in the event).
    Column("acceptance_token_hash", Text, unique=True),
    utc_timestamp("acceptance_expires_at"),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("updated_at", nullable=False),
    Index("ix_repairs_created_at_id", "created_at", "id"),
    Index("ix_repairs_ticket_id_created_at_id", "ticket_id", "created_at", "id"),
)

escalations = Table(
    "escalations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("ticket_id", UUID(as_uuid=True), nullable=False),
    Column("ticket_number", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("level", Text, nullable=False),
    Column("escalated_to", Text, nullable=False),
    Column("priority", Text, nullable=False),
    Column("group", Text, nullable=False),
    Column("assignee_id", Text),
    utc_timestamp("deadline", nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("acknowledged_at"),
    Column("acknowledged_by", Text),
    Column("note", Text),
    Index("ix_escalations_created_at_id", "created_at", "id"),
    # The lead's queue: open breaches, oldest first; an agent's: their tickets' escalations.
    Index("ix_escalations_status_level_created_at_id", "status", "level", "created_at", "id"),
    Index("ix_escalations_assignee_id_created_at_id", "assignee_id", "created_at", "id"),
    Index("ix_escalations_ticket_id_created_at_id", "ticket_id", "created_at", "id"),
)

# What each customer signed (contract.signed), once per contract: its tier comes from the totals.
customer_contracts = Table(
    "customer_contracts",
    metadata,
    Column("contract_id", UUID(as_uuid=True), primary_key=True),
    Column("contract_number", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total_amount", Numeric(18, 2), nullable=False),
    utc_timestamp("signed_at", nullable=False),
    Index("ix_customer_contracts_customer_id", "customer_id"),
)

# Contracts terminated (contract.terminated): they no longer count toward a tier. Kept apart from
# customer_contracts so a termination delivered before its signing still counts.
terminated_contracts = Table(
    "terminated_contracts",
    metadata,
    Column("contract_id", UUID(as_uuid=True), primary_key=True),
    Column("customer_id", Text, nullable=False),
    utc_timestamp("terminated_at", nullable=False),
)

CONTACT = json_codec(ContactInfo | None)
PARTS = json_codec(tuple[Part, ...])
VERSION = json_codec(ArticleVersion | None)
SLA = json_codec(dict[str, SlaClock])
CLOCK_ORDER = {FIRST_RESPONSE: 0, RESOLUTION: 1}


class SupportVisible:
    """Support staff see every customer's after-sales records; sales staff their own scope."""

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        if principal is not None and principal.roles & SUPPORT_ROLES:
            return true()
        return super().visible_to(principal)  # type: ignore[misc]


class WarrantyRepository(SupportVisible, Repository[Warranty]):
    table = warranties
    noun = "warranty"

    async def units_for_order(self, order_id: uuid.UUID) -> set[str]:
        rows = await self.uow.execute(select(warranties.c.unit).where(warranties.c.order_id == order_id))
        return {row.unit for row in rows}

    async def matching(
        self,
        principal: Principal | None,
        *,
        serial_number: str | None = None,
        order_id: uuid.UUID | None = None,
        line_no: int | None = None,
    ) -> list[Warranty]:
        """Every warranty of a serial number or an order (line), for a coverage check."""
        query = select(warranties).where(self.visible_to(principal))
        if serial_number is not None:
            query = query.where(warranties.c.serial_number == serial_number)
        if order_id is not None:
            query = query.where(warranties.c.order_id == order_id)
        if line_no is not None:
            query = query.where(warranties.c.line_no == line_no)
        rows = await self.uow.execute(query.order_by(warranties.c.created_at, warranties.c.id).limit(1000))
        return [self.from_row(row) for row in rows]

    def to_row(self, w: Warranty) -> dict[str, Any]:
        return {
            "id": w.id,
            "version": w.version,
            "order_id": w.order_id,
            "order_number": w.order_number,
            "line_no": w.line_no,
            "unit": w.unit,
            "sku": w.sku,
            "description": w.description,
            "serial_number": w.serial_number,
            "quantity": w.quantity,
            "customer_id": w.customer_id,
            "owner_id": w.owner_id,
            "warranty_months": w.warranty_months,
            "starts_at": w.starts_at,
            "ends_at": w.ends_at,
            "created_at": w.created_at,
        }

    def from_row(self, row: Any) -> Warranty:
        return Warranty(
            id=row.id,
            version=row.version,
            order_id=row.order_id,
            order_number=row.order_number,
            line_no=row.line_no,
            sku=row.sku,
            description=row.description,
            serial_number=row.serial_number,
            quantity=row.quantity,
            customer_id=row.customer_id,
            owner_id=row.owner_id,
            warranty_months=row.warranty_months,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            created_at=row.created_at,
        )


class SurveyRepository(SupportVisible, Repository[Survey]):
    table = surveys
    noun = "survey"

    async def exists_for_order(self, order_id: uuid.UUID) -> bool:
        return (await self.uow.execute(select(surveys.c.id).where(surveys.c.order_id == order_id))).first() is not None

    async def exists_for_ticket(self, ticket_id: uuid.UUID) -> bool:
        query = select(surveys.c.id).where(surveys.c.ticket_id == ticket_id)
        return (await self.uow.execute(query)).first() is not None

    async def by_token_hash(self, token_hash: str, *, for_update: bool = False) -> Survey | None:
        """The survey a customer's link opens (no principal: the link itself is the credential)."""
        query = select(surveys).where(
            or_(surveys.c.token_hash == token_hash, surveys.c.reminder_token_hash == token_hash)
        )
        if for_update:
            query = query.with_for_update()
        return await _by_link(self, query)

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
            "ticket_id": survey.ticket_id,
            "token_hash": survey.token_hash,
            "reminder_token_hash": survey.reminder_token_hash,
            "products": list(survey.products),
            "team": survey.team,
            "expires_at": survey.expires_at,
            "csat": survey.csat,
            "nps": survey.nps,
            "comment": survey.comment,
            "completed_at": survey.completed_at,
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
            ticket_id=row.ticket_id,
            token_hash=row.token_hash,
            reminder_token_hash=row.reminder_token_hash,
            products=tuple(row.products),
            team=row.team,
            expires_at=row.expires_at,
            csat=row.csat,
            nps=row.nps,
            comment=row.comment,
            completed_at=row.completed_at,
        )


async def _by_link(repository: Repository, query: Any) -> Any:
    """The aggregate a customer's link opens (no principal: the link is the credential), loaded for change."""
    row = (await repository.uow.execute(query)).first()
    if row is None:
        return None
    aggregate = repository.from_row(row)
    repository._loaded_versions[aggregate.aggregate_id] = aggregate.version
    return aggregate


def _support_only(principal: Principal | None) -> ColumnElement[bool]:
    if principal is None or principal.roles & (SUPPORT_ROLES | {ADMIN}):
        return true()
    return false()


class TicketRepository(Repository[Ticket]):
    table = tickets
    noun = "ticket"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return _support_only(principal)

    async def next_number(self, year: int) -> str:
        # A sequence never hands out a number twice, even under concurrency; gaps are fine.
        value = await self.uow.scalar(ticket_number_seq.next_value())
        return f"TK-{year}-{value:06d}"

    async def open_counts(self, agent_ids: list[str]) -> dict[str, int]:
        """Open tickets per agent: the load auto-assignment balances."""
        if not agent_ids:
            return {}
        query = (
            select(tickets.c.assignee_id, func.count())
            .where(tickets.c.assignee_id.in_(agent_ids), tickets.c.status.in_([s.value for s in OPEN_STATUSES]))
            .group_by(tickets.c.assignee_id)
        )
        return {row[0]: row[1] for row in await self.uow.execute(query)}

    async def latest_similar(self, customer_id: str, category: str, since: datetime) -> uuid.UUID | None:
        """The latest ticket of this account and category since ``since``: a repeat issue."""
        query = (
            select(tickets.c.id)
            .where(tickets.c.customer_id == customer_id, tickets.c.category == category, tickets.c.created_at >= since)
            .order_by(tickets.c.created_at.desc())
            .limit(1)
        )
        return (await self.uow.execute(query)).scalar()

    async def by_confirmation_hash(self, token_hash: str) -> Ticket | None:
        query = select(tickets).where(tickets.c.confirmation_token_hash == token_hash).with_for_update()
        return await _by_link(self, query)

    def to_row(self, t: Ticket) -> dict[str, Any]:
        return {
            "id": t.id,
            "number": t.number,
            "version": t.version,
            "status": t.status.value,
            "subject": t.subject,
            "description": t.description,
            "channel": t.channel.value,
            "type": t.type.value,
            "priority": t.priority.value,
            "group": t.group,
            "category": t.category,
            "customer_id": t.customer_id,
            "customer_name": t.customer_name,
            "contact": CONTACT.dump_python(t.contact, mode="json"),
            "order_id": t.order_id,
            "order_line_no": t.order_line_no,
            "serial_number": t.serial_number,
            "assignee_id": t.assignee_id,
            "resolution": t.resolution,
            "close_reason": t.close_reason,
            "reopen_count": t.reopen_count,
            "confirmation_token_hash": t.confirmation_token_hash,
            "sla": SLA.dump_python(t.sla, mode="json"),
            "awaiting_response": t.awaiting_response,
            "repeat_of": t.repeat_of,
            "sla_tier": t.sla_tier,
            "linked_article_ids": list(t.linked_article_ids),
            "warranty_coverage": t.warranty_coverage,
            "created_at": t.created_at,
            "updated_at": t.updated_at,
            "first_responded_at": t.first_responded_at,
            "resolved_at": t.resolved_at,
            "closed_at": t.closed_at,
        }

    def from_row(self, row: Any) -> Ticket:
        return Ticket(
            id=row.id,
            number=row.number,
            version=row.version,
            status=TicketStatus(row.status),
            subject=row.subject,
            description=row.description,
            channel=Channel(row.channel),
            type=TicketType(row.type),
            priority=Priority(row.priority),
            group=row.group,
            category=row.category,
            customer_id=row.customer_id,
            customer_name=row.customer_name,
            contact=CONTACT.validate_python(row.contact),
            order_id=row.order_id,
            order_line_no=row.order_line_no,
            serial_number=row.serial_number,
            assignee_id=row.assignee_id,
            resolution=row.resolution,
            close_reason=row.close_reason,
            reopen_count=row.reopen_count,
            confirmation_token_hash=row.confirmation_token_hash,
            # JSONB does not keep key order: show the clocks in the policy's order.
            sla=dict(sorted(SLA.validate_python(row.sla).items(), key=lambda item: CLOCK_ORDER.get(item[0], 99))),
            awaiting_response=row.awaiting_response,
            repeat_of=row.repeat_of,
            sla_tier=row.sla_tier,
            linked_article_ids=tuple(row.linked_article_ids),
            warranty_coverage=row.warranty_coverage,
            created_at=row.created_at,
            updated_at=row.updated_at,
            first_responded_at=row.first_responded_at,
            resolved_at=row.resolved_at,
            closed_at=row.closed_at,
        )


class CustomerContracts:
    """The contracts each customer signed, counted once per contract however often it arrives,
    until they are terminated."""

    def __init__(self, uow: Any) -> None:
        self.uow = uow

    async def record(self, event: ContractSigned) -> bool:
        stmt = (
            pg_insert(customer_contracts)
            .values(
                contract_id=event.contract_id,
                contract_number=event.contract_number,
                customer_id=event.customer_id,
                currency=event.currency,
                total_amount=event.total_amount,
                signed_at=event.signed_at,
            )
            .on_conflict_do_nothing(index_elements=[customer_contracts.c.contract_id])
        )
        return (await self.uow.execute(stmt)).rowcount == 1

    async def record_termination(self, event: ContractTerminated) -> None:
        values = {"contract_id": event.contract_id, "customer_id": event.customer_id}
        stmt = pg_insert(terminated_contracts).values(**values, terminated_at=event.terminated_at)
        await self.uow.execute(stmt.on_conflict_do_nothing(index_elements=[terminated_contracts.c.contract_id]))

    async def signed_totals(self, customer_id: str) -> dict[str, Decimal]:
        """The customer's signed total per currency, terminated contracts left out."""
        cc = customer_contracts.c
        ended = exists().where(terminated_contracts.c.contract_id == cc.contract_id)
        query = (
            select(cc.currency, func.sum(cc.total_amount))
            .where(cc.customer_id == customer_id, ~ended)
            .group_by(cc.currency)
        )
        return {row[0]: row[1] for row in await self.uow.execute(query)}


class EscalationRepository(Repository[Escalation]):
    """Leads see every escalation; an agent sees those of the tickets assigned to them."""

    table = escalations
    noun = "escalation"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        if principal is None or principal.roles & {"support_lead", ADMIN}:
            return true()
        if "support_agent" in principal.roles:
            return escalations.c.assignee_id == principal.sub
        return false()

    def to_row(self, e: Escalation) -> dict[str, Any]:
        return {
            **{name: getattr(e, name) for name in ESCALATION_FIELDS},
            "level": e.level.value,
            "status": e.status.value,
        }

    def from_row(self, row: Any) -> Escalation:
        values = {name: getattr(row, name) for name in ESCALATION_FIELDS}
        return Escalation(**values, level=EscalationLevel(row.level), status=EscalationStatus(row.status))


ESCALATION_FIELDS = (
    "id",
    "version",
    "ticket_id",
    "ticket_number",
    "kind",
    "escalated_to",
    "priority",
    "group",
    "assignee_id",
    "deadline",
    "created_at",
    "acknowledged_at",
    "acknowledged_by",
    "note",
)


class AgentRepository(Repository[Agent]):
    table = agents
    noun = "agent"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return _support_only(principal)

    async def lock_group(self, group: str) -> list[Agent]:
        """The group's agents, under a transaction-scoped lock on the group, so concurrent
        assignments see each other's load. An advisory lock, not ``FOR UPDATE`` on every agent
        row: one lock in memory instead of a tuple lock (and its WAL record) per agent."""
        key = func.hashtextextended(literal("service_desk.group:") + group, 0)
        await self.uow.execute(select(func.pg_advisory_xact_lock(key)))
        query = select(agents).where(agents.c.groups.contains([group])).order_by(agents.c.id)
        return [self.from_row(row) for row in await self.uow.execute(query)]

    def to_row(self, a: Agent) -> dict[str, Any]:
        return {
            "id": a.id,
            "version": a.version,
            "name": a.name,
            "groups": list(a.groups),
            "capacity": a.capacity,
            "on_duty": a.on_duty,
            "created_at": a.created_at,
        }

    def from_row(self, row: Any) -> Agent:
        return Agent(
            id=row.id,
            version=row.version,
            name=row.name,
            groups=tuple(row.groups),
            capacity=row.capacity,
            on_duty=row.on_duty,
            created_at=row.created_at,
        )


class ArticleRepository(Repository[Article]):
    table = kb_articles
    noun = "article"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return _support_only(principal)

    async def add_version(self, article: Article) -> None:
        v = article.published
        assert v is not None
        await self.uow.execute(
            kb_article_versions.insert(),
            {
                "article_id": article.id,
                "number": v.number,
                "title": v.title,
                "body": v.body,
                "category": v.category,
                "published_at": v.published_at,
                "published_by": v.published_by,
            },
        )

    async def versions(self, article_id: uuid.UUID) -> list[ArticleVersion]:
        rows = await self.uow.execute(
            select(kb_article_versions)
            .where(kb_article_versions.c.article_id == article_id)
            .order_by(kb_article_versions.c.number)
        )
        return [ArticleVersion(r.number, r.title, r.body, r.category, r.published_at, r.published_by) for r in rows]

    async def all_published(self, article_ids: tuple[uuid.UUID, ...]) -> bool:
        query = select(func.count()).where(
            kb_articles.c.id.in_(article_ids), kb_articles.c.status == ArticleStatus.PUBLISHED.value
        )
        return (await self.uow.execute(query)).scalar() == len(article_ids)

    async def search(
        self, text: str, *, category: str | None = None, limit: int = 10, match_any: bool = False
    ) -> list[tuple[Article, float]]:
        """Published articles matching every term of ``text`` (or any, for suggestions), best first."""
        terms = query_terms(text)
        if not terms:
            return []
        operator = " | " if match_any else " & "
        query_vector = func.to_tsquery("simple", operator.join(_quote_term(t) for t in terms))
        rank = func.ts_rank(kb_articles.c.search, query_vector).label("rank")
        query = (
            select(kb_articles, rank)
            .where(kb_articles.c.search.op("@@")(query_vector), kb_articles.c.status == ArticleStatus.PUBLISHED.value)
            .order_by(rank.desc(), kb_articles.c.id)
            .limit(limit)
        )
        if category is not None:
            query = query.where(kb_articles.c.category == category)
        return [(self.from_row(row), float(row.rank)) for row in await self.uow.execute(query)]

    def to_row(self, a: Article) -> dict[str, Any]:
        return {
            "id": a.id,
            "version": a.version,
            "status": a.status.value,
            "category": a.category,
            "title": a.title,
            "body": a.body,
            "author_id": a.author_id,
            "published": VERSION.dump_python(a.published, mode="json"),
            "search_terms": a.searchable_text(),
            "created_at": a.created_at,
            "updated_at": a.updated_at,
        }

    def from_row(self, row: Any) -> Article:
        return Article(
            id=row.id,
            version=row.version,
            status=ArticleStatus(row.status),
            category=row.category,
            title=row.title,
            body=row.body,
            author_id=row.author_id,
            published=VERSION.validate_python(row.published),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _quote_term(term: str) -> str:
    """A term as a tsquery lexeme: quoted, so no character of a user's query is an operator."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


class RepairRepository(Repository[Repair]):
    table = repairs
    noun = "repair"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return _support_only(principal)

    async def by_acceptance_hash(self, token_hash: str, *, for_update: bool = False) -> Repair | None:
        """The repair a customer's acceptance link opens (the link itself is the credential)."""
        query = select(repairs).where(repairs.c.acceptance_token_hash == token_hash)
        if for_update:
            query = query.with_for_update()
        return await _by_link(self, query)

    def to_row(self, r: Repair) -> dict[str, Any]:
        return {
            "id": r.id,
            "version": r.version,
            "ticket_id": r.ticket_id,
            "ticket_number": r.ticket_number,
            "customer_id": r.customer_id,
            "serial_number": r.serial_number,
            "under_warranty": r.under_warranty,
            "currency": r.currency,
            "status": r.status.value,
            "findings": r.findings,
            "parts": PARTS.dump_python(r.parts, mode="json"),
            "labour_cost": r.labour_cost,
            "rejections": list(r.rejections),
            "accepted_at": r.accepted_at,
            "accepted_by": r.accepted_by,
            "acceptance_token_hash": r.acceptance_token_hash,
            "acceptance_expires_at": r.acceptance_expires_at,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }

    def from_row(self, row: Any) -> Repair:
        return Repair(
            id=row.id,
            version=row.version,
            ticket_id=row.ticket_id,
            ticket_number=row.ticket_number,
            customer_id=row.customer_id,
            serial_number=row.serial_number,
            under_warranty=row.under_warranty,
            currency=row.currency,
            status=RepairStatus(row.status),
            findings=row.findings,
            parts=PARTS.validate_python(row.parts),
            labour_cost=row.labour_cost,
            rejections=list(row.rejections),
            accepted_at=row.accepted_at,
            accepted_by=row.accepted_by,
            acceptance_token_hash=row.acceptance_token_hash,
            acceptance_expires_at=row.acceptance_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
