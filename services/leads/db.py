"""The leads schema: tables and repositories (SQLAlchemy Core)."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    Float,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Select,
    Sequence,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.leads.domain import (
    CONTACT_KINDS,
    NO_FIRST_CONTACT,
    RELEASED,
    Account,
    AccountClassification,
    Activity,
    ActivityKind,
    ActivityStatus,
    Attribution,
    DecisionTimeframe,
    Grade,
    KeyRegistration,
    Lead,
    LeadSource,
    MatchKey,
    MatchKind,
    NeedFit,
    RepStatus,
    SalesRep,
    SalesTeam,
)
from services.leads.domain.account import AccountTier
from services.leads.domain.behaviour import BehaviourModel
from services.leads.domain.conversion import Contact
from services.leads.domain.opportunity import Opportunity, Stage
from services.leads.domain.quote import Quote, QuoteLine, QuoteStatus
from services.leads.domain.response import MERGED, OWNER_CHANGED, REASSIGNED, ResponseCounts
from services.leads.domain.target import PeriodKind, Target, TargetScope
from services.leads.domain.timeline import CustomerEvent
from services.leads.domain.web_form import LeadForm
from services.leads.sales_scope import sales_scope, scope_alternatives
from shared.auth import Principal
from shared.db import service_metadata, utc_timestamp
from shared.events import LeadAssigned, LeadMerged, LeadOwnerChanged, LeadReturnedToPool
from shared.numbers import next_document_number
from shared.pagination import PageParams, fetch_page, keyset_select
from shared.repository import Repository, json_codec

metadata, platform_tables = service_metadata("leads")

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("customer_id", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("classification", Text, nullable=False),
    Column("region", Text),
    Column("signed_contracts", Integer, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Column("tier", Text, nullable=False, server_default="normal"),
    Column("team", Text),
    Column("lead_id", UUID(as_uuid=True)),
    utc_timestamp("next_follow_up_at"),
    Index("ix_accounts_created_at_id", "created_at", "id"),
    Index("ix_accounts_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_accounts_team_created_at_id", "team", "created_at", "id"),
    Index("ix_accounts_region_created_at_id", "region", "created_at", "id"),
)

_LIST_FILTERS = ["grade", "source", "campaign", "region"]

leads = Table(
    "leads",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("owner_id", Text),  # NULL: in the public pool
    Column("registered_by", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("company_name", Text),
    Column("contact_name", Text),
    Column("phone", Text),
    Column("email", Text),
    Column("uscc", Text),
    Column("region", Text),
    Column("industry", Text),
    Column("campaign", Text),
    Column("utm_source", Text),
    Column("utm_medium", Text),
    Column("utm_campaign", Text),
    Column("utm_term", Text),
    Column("utm_content", Text),
    Column("budget", Numeric(14, 2)),
    Column("currency", Text, nullable=False),
    Column("decision_timeframe", Text, nullable=False),
    Column("need_fit", Text, nullable=False),
    Column("grade", Text, nullable=False),
    Column("grading_rules_version", Integer, nullable=False),
    Column("duplicate_of_lead_id", UUID(as_uuid=True)),
    Column("matched_account_id", UUID(as_uuid=True)),
    Column("ownership_conflict", Boolean, nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("assigned_at"),
    utc_timestamp("first_contacted_at"),
    utc_timestamp("pooled_at"),
    Column("returned_from", Text),
    Column("team", Text),  # the owner's team (a manager sees their team's leads)
    Column("merged_into_lead_id", UUID(as_uuid=True)),
    # The list's stable order, and one index per filter (each ends with the order's key).
    Index("ix_leads_created_at_id", "created_at", "id"),
    Index("ix_leads_source_created_at_id", "source", "created_at", "id"),
    Index("ix_leads_grade_created_at_id", "grade", "created_at", "id"),
    Index("ix_leads_campaign_created_at_id", "campaign", "created_at", "id"),
    Index("ix_leads_duplicate_of_lead_id_created_at_id", "duplicate_of_lead_id", "created_at", "id"),
    # One per scope alternative (LeadRepository.list_query), the other list filters included:
    # they are checked on the index entries (an index-only scan), so a filtered page reads no
    # table rows it does not list, and no other filter index is bitmap-ANDed and sorted.
    *(
        Index(
            f"ix_leads_{column}_created_at_id_filters",
            column,
            "created_at",
            "id",
            postgresql_include=[c for c in _LIST_FILTERS if c != column],
        )
        for column in ("owner_id", "team", "region", "registered_by")
    ),
    # The public pool, longest waiting first (all of it, by region, by industry).
    Index("ix_leads_merged_into_lead_id", "merged_into_lead_id"),
    Index("ix_leads_pool_pooled_at_id", "pooled_at", "id", postgresql_where=text("owner_id IS NULL")),
    Index("ix_leads_pool_region_pooled_at_id", "region", "pooled_at", "id", postgresql_where=text("owner_id IS NULL")),
    Index(
        "ix_leads_pool_industry_pooled_at_id", "industry", "pooled_at", "id", postgresql_where=text("owner_id IS NULL")
    ),
    # The reps' loads (SalesRepRepository.loads, every assignment by the rules): an index-only
    # count per rep, where the owner index read every lead's row to leave merged ones out.
    Index("ix_leads_owner_id_unmerged", "owner_id", postgresql_where=text("merged_into_lead_id IS NULL")),
)

# Who registered a customer first, by each of its match keys: the unique primary key makes
# two concurrent registrations of one customer serialise (INSERT … ON CONFLICT DO NOTHING).
customer_keys = Table(
    "customer_keys",
    metadata,
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("owner_id", Text),  # NULL while the customer's lead is in the pool
    Column("lead_id", UUID(as_uuid=True)),
    Column("account_id", UUID(as_uuid=True)),
    utc_timestamp("created_at", nullable=False),
    PrimaryKeyConstraint("kind", "value", name="pk_customer_keys"),
    Index("ix_customer_keys_lead_id", "lead_id"),
    Index("ix_customer_keys_account_id", "account_id"),
)

# A rep registered a customer another rep had registered first.
ownership_conflicts = Table(
    "ownership_conflicts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("lead_id", UUID(as_uuid=True), nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("claimant_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("value", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("resolved_at"),
    Column("resolved_by", Text),
    Column("resolution", Text),
    Index("ix_ownership_conflicts_lead_id", "lead_id"),
    Index("ix_ownership_conflicts_created_at_id", "created_at", "id"),
)

# Every assignment of a lead to a rep (by the rules, by hand, by a claim), its first contact and
# how it ended: the lead row keeps only the current one; the response report reads these.
lead_assignments = Table(
    "lead_assignments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("lead_id", UUID(as_uuid=True), nullable=False),
    Column("rep_id", Text, nullable=False),
    Column("team", Text),  # the rep's team then
    Column("region", Text),  # the lead's
    Column("source", Text, nullable=False),  # the lead's
    utc_timestamp("assigned_at", nullable=False),
    utc_timestamp("first_contact_due_at"),
    utc_timestamp("first_contacted_at"),
    utc_timestamp("ended_at"),  # NULL: the rep still has the lead
    Column("end_reason", Text),  # released, no_first_contact, reassigned, owner_changed, merged
    # At most one open assignment per lead (and how a change finds it).
    Index("uq_lead_assignments_open_lead_id", "lead_id", unique=True, postgresql_where=text("ended_at IS NULL")),
    # The report: by period, within the caller's scope and the filters.
    Index("ix_lead_assignments_assigned_at", "assigned_at"),
    Index("ix_lead_assignments_rep_id_assigned_at", "rep_id", "assigned_at"),
    Index("ix_lead_assignments_team_assigned_at", "team", "assigned_at"),
    Index("ix_lead_assignments_region_assigned_at", "region", "assigned_at"),
    Index("ix_lead_assignments_source_assigned_at", "source", "assigned_at"),
)


class LeadAssignments:
    """The assignment history, written as the lead aggregate changes (see LeadRepository)."""

    def __init__(self, uow) -> None:
        self.uow = uow

    def opened(self, lead: Lead, event: LeadAssigned) -> None:
        self.uow.insert_later(lead_assignments, self.opened_row(lead, event))

    @staticmethod
    def opened_row(lead: Lead, event: LeadAssigned) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "lead_id": lead.id,
            "rep_id": event.owner_id,
            "team": lead.team,
            "region": lead.region,
            "source": lead.source.value,
            "assigned_at": event.assigned_at,
            "first_contact_due_at": event.first_contact_due_at,
            "first_contacted_at": None,
            "ended_at": None,
            "end_reason": None,
        }

    async def ended(self, lead_id: uuid.UUID, at: Any, reason: str) -> None:
        a = lead_assignments.c
        await self.uow.execute(
            update(lead_assignments)
            .where(a.lead_id == lead_id, a.ended_at.is_(None))
            .values(ended_at=at, end_reason=reason)
        )

    async def contacted(self, lead: Lead) -> None:
        a = lead_assignments.c
        await self.uow.execute(
            update(lead_assignments)
            .where(a.lead_id == lead.id, a.ended_at.is_(None), a.rep_id == lead.owner_id)
            .where(a.first_contacted_at.is_(None))
            .values(first_contacted_at=lead.first_contacted_at)
        )

    async def record(self, lead: Lead, contact_before: datetime | None) -> None:
        """What ``lead``'s pending events (and a new first contact) do to its assignments."""
        for event, _ in lead.pending_events:
            if isinstance(event, LeadAssigned):
                if event.previous_owner_id is not None:
                    await self.ended(lead.id, event.assigned_at, REASSIGNED)
                self.opened(lead, event)
            elif isinstance(event, LeadReturnedToPool):
                await self.ended(lead.id, event.returned_at, event.reason)
            elif isinstance(event, LeadOwnerChanged):
                await self.ended(lead.id, func.now(), OWNER_CHANGED)
            elif isinstance(event, LeadMerged):
                await self.ended(event.merged_lead_id, event.merged_at, MERGED)
        if lead.first_contacted_at is not None and lead.first_contacted_at != contact_before:
            await self.contacted(lead)


class AccountRepository(Repository[Account]):
    table = accounts
    noun = "account"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return sales_scope(principal, owner=accounts.c.owner_id, team=accounts.c.team, region=accounts.c.region)

    async def by_customer_id(self, customer_id: str) -> Account | None:
        row = (
            await self.uow.execute(select(accounts).where(accounts.c.customer_id == customer_id).with_for_update())
        ).first()
        if row is None:
            return None
        account = self.from_row(row)
        self._loaded_versions[account.aggregate_id] = account.version
        return account

    def to_row(self, account: Account) -> dict[str, Any]:
        return {
            "id": account.id,
            "version": account.version,
            "customer_id": account.customer_id,
            "name": account.name,
            "owner_id": account.owner_id,
            "classification": account.classification.value,
            "region": account.region,
            "signed_contracts": account.signed_contracts,
            "created_at": account.created_at,
            "tier": account.tier.value,
            "team": account.team,
            "lead_id": account.lead_id,
            "next_follow_up_at": account.next_follow_up_at,
        }

    def from_row(self, row: Any) -> Account:
        return Account(
            id=row.id,
            version=row.version,
            customer_id=row.customer_id,
            name=row.name,
            owner_id=row.owner_id,
            classification=AccountClassification(row.classification),
            region=row.region,
            signed_contracts=row.signed_contracts,
            created_at=row.created_at,
            tier=AccountTier(row.tier),
            team=row.team,
            lead_id=row.lead_id,
            next_follow_up_at=row.next_follow_up_at,
        )


class LeadRepository(Repository[Lead]):
    table = leads
    noun = "lead"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        """Who sees a lead: :func:`sales_scope` by its owner, team and region; also the rep who
        registered it (when another rep owned the customer first: they learn who, not the other
        lead). Lists leave the pool out (it has its own list); :meth:`get` finds pool leads too."""
        if principal is None:
            return true()
        scope = sales_scope(principal, owner=leads.c.owner_id, team=leads.c.team, region=leads.c.region)
        return scope if self._changing else or_(scope, leads.c.registered_by == principal.sub)

    _changing = False

    def __init__(self, uow) -> None:
        super().__init__(uow)
        # Each loaded lead's first contact: a save that sets it records it on the assignment.
        self._loaded_contact: dict[uuid.UUID, datetime | None] = {}

    async def add(self, lead: Lead) -> None:
        await LeadAssignments(self.uow).record(lead, None)
        await super().add(lead)

    async def save(self, lead: Lead) -> None:
        await LeadAssignments(self.uow).record(lead, self._loaded_contact.get(lead.id))
        self._loaded_contact[lead.id] = lead.first_contacted_at
        await super().save(lead)

    def list_query(
        self,
        principal: Principal | None,
        page: PageParams,
        *,
        filters: dict[str, Any],
        created_from: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Select[Any]:
        """The query of one page of :meth:`list`, to be run by ``fetch_page`` (the benchmark
        runs it bare too).

        The scope is an OR (owner, team or region, registrant) that no index serves in keyset
        order: PostgreSQL would scan the whole ``created_at`` index filtering, or collect all of
        a scope's rows and sort them, either growing with the table. So each alternative is its
        own keyset query on its ``(column, created_at, id)`` index, at most ``limit + 1`` keys,
        and the page is the first ``limit + 1`` of their union (a lead in two is listed once).
        """
        conditions = [leads.c[column] == value for column, value in filters.items() if value is not None]
        if created_from is not None:
            conditions.append(leads.c.created_at >= created_from)
        if created_before is not None:
            conditions.append(leads.c.created_at < created_before)
        key = (leads.c.created_at, leads.c.id)
        alternatives = self._alternatives(principal)
        if alternatives is None:
            return select(leads).where(*conditions)
        branches = [keyset_select(select(*key).where(alt, *conditions), key, page) for alt in alternatives]
        # Only the page's keys are looked up in the table, not every branch's.
        keys = union(*branches).subquery()
        first = select(keys.c.id).order_by(keys.c.created_at, keys.c.id).limit(page.limit + 1)
        return select(leads).where(leads.c.id.in_(first))

    def _alternatives(self, principal: Principal | None) -> list[ColumnElement[bool]] | None:
        """:meth:`visible_to` as a list of alternatives (None: every lead)."""
        if principal is None:
            return None
        scope = scope_alternatives(principal, owner=leads.c.owner_id, team=leads.c.team, region=leads.c.region)
        return None if scope is None else [*scope, leads.c.registered_by == principal.sub]

    async def list(
        self,
        principal: Principal | None,
        page: PageParams,
        *,
        filters: dict[str, Any] | None = None,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[Lead], str | None]:
        """The leads ``principal`` sees, oldest first (``created_at, id``), filtered."""
        query = self.list_query(
            principal, page, filters=filters or {}, created_from=created_from, created_before=created_before
        )
        rows, next_cursor = await fetch_page(self.uow, query, (leads.c.created_at, leads.c.id), page)
        return [self.from_row(row) for row in rows], next_cursor

    async def merged_into(self, lead_id: uuid.UUID) -> list[uuid.UUID]:
        query = select(leads.c.id).where(leads.c.merged_into_lead_id == lead_id)
        return list((await self.uow.execute(query)).scalars())

    async def repoint_merged(self, from_lead: uuid.UUID, into: Lead) -> None:
        """Leads merged into ``from_lead`` (now merged itself) follow it into ``into``."""
        await self.uow.execute(
            update(leads)
            .where(leads.c.merged_into_lead_id == from_lead)
            .values(merged_into_lead_id=into.id, owner_id=into.owner_id, team=into.team, version=leads.c.version + 1)
        )

    async def get_for_change(
        self, aggregate_id: uuid.UUID, principal: Principal | None, *, if_match: int | None = None
    ) -> Lead:
        """Only a lead in the caller's scope (or the pool) changes: the rep who registered a lead
        another rep owns reads it, no more."""
        self._changing = True
        try:
            return await super().get_for_change(aggregate_id, principal, if_match=if_match)
        finally:
            self._changing = False

    async def get(
        self, aggregate_id: uuid.UUID, principal: Principal | None, *, for_update: bool = False
    ) -> Lead | None:
        """A lead ``principal`` may see, or one in the pool (every sales role sees the pool)."""
        lead = await super().get(aggregate_id, principal, for_update=for_update)
        if lead is None and principal is not None:
            lead = await super().get(aggregate_id, None, for_update=for_update)
            if lead is not None and not lead.in_pool:
                return None
        if lead is not None:
            self._loaded_contact[lead.id] = lead.first_contacted_at
        return lead

    async def pool(
        self, page: PageParams, *, region: str | None, industry: str | None
    ) -> tuple[list[Lead], str | None]:
        """The public pool, longest waiting first."""
        query = select(leads).where(leads.c.owner_id.is_(None), leads.c.merged_into_lead_id.is_(None))
        if region is not None:
            query = query.where(leads.c.region == region)
        if industry is not None:
            query = query.where(leads.c.industry == industry)
        rows, next_cursor = await fetch_page(self.uow, query, (leads.c.pooled_at, leads.c.id), page)
        return [self.from_row(row) for row in rows], next_cursor

    async def add_many(self, new: list[Lead]) -> None:
        """:meth:`add` for many new leads: the leads and their assignments (a new lead's only
        assignment history: opened) by COPY, their events to the outbox with the commit."""
        opened = []
        for lead in new:
            for event, sequence in lead.take_events():
                if isinstance(event, LeadAssigned):
                    assert event.previous_owner_id is None, "a new lead had no owner before"
                    opened.append(LeadAssignments.opened_row(lead, event))
                self.uow.emit(event, subject=lead.aggregate_id, sequence=sequence)
        await self.uow.copy_rows(leads, [self.to_row(lead) for lead in new])
        await self.uow.copy_rows(lead_assignments, opened)

    def to_row(self, lead: Lead) -> dict[str, Any]:
        a = lead.attribution
        return {
            "id": lead.id,
            "version": lead.version,
            "owner_id": lead.owner_id,
            "registered_by": lead.registered_by,
            "source": lead.source.value,
            "company_name": lead.company_name,
            "contact_name": lead.contact_name,
            "phone": lead.phone,
            "email": lead.email,
            "uscc": lead.uscc,
            "region": lead.region,
            "industry": lead.industry,
            "campaign": a.campaign,
            "utm_source": a.utm_source,
            "utm_medium": a.utm_medium,
            "utm_campaign": a.utm_campaign,
            "utm_term": a.utm_term,
            "utm_content": a.utm_content,
            "budget": lead.budget,
            "currency": lead.currency,
            "decision_timeframe": lead.decision_timeframe.value,
            "need_fit": lead.need_fit.value,
            "grade": lead.grade.value,
            "grading_rules_version": lead.grading_rules_version,
            "duplicate_of_lead_id": lead.duplicate_of_lead_id,
            "matched_account_id": lead.matched_account_id,
            "ownership_conflict": lead.ownership_conflict,
            "created_at": lead.created_at,
            "assigned_at": lead.assigned_at,
            "first_contacted_at": lead.first_contacted_at,
            "pooled_at": lead.pooled_at,
            "returned_from": lead.returned_from,
            "team": lead.team,
            "merged_into_lead_id": lead.merged_into_lead_id,
        }

    def from_row(self, row: Any) -> Lead:
        return Lead(
            id=row.id,
            version=row.version,
            owner_id=row.owner_id,
            registered_by=row.registered_by,
            source=LeadSource(row.source),
            created_at=row.created_at,
            company_name=row.company_name,
            contact_name=row.contact_name,
            phone=row.phone,
            email=row.email,
            uscc=row.uscc,
            region=row.region,
            industry=row.industry,
            attribution=Attribution(
                campaign=row.campaign,
                utm_source=row.utm_source,
                utm_medium=row.utm_medium,
                utm_campaign=row.utm_campaign,
                utm_term=row.utm_term,
                utm_content=row.utm_content,
            ),
            budget=row.budget,
            currency=row.currency,
            decision_timeframe=DecisionTimeframe(row.decision_timeframe),
            need_fit=NeedFit(row.need_fit),
            grade=Grade(row.grade),
            grading_rules_version=row.grading_rules_version,
            duplicate_of_lead_id=row.duplicate_of_lead_id,
            matched_account_id=row.matched_account_id,
            ownership_conflict=row.ownership_conflict,
            assigned_at=row.assigned_at,
            first_contacted_at=row.first_contacted_at,
            pooled_at=row.pooled_at,
            returned_from=row.returned_from,
            team=row.team,
            merged_into_lead_id=row.merged_into_lead_id,
        )


_CLAIM_KEYS = pg_insert(customer_keys).on_conflict_do_nothing().returning(customer_keys.c.kind, customer_keys.c.value)


class CustomerKeys:
    """The first-registered-owner registry (one row per match key)."""

    def __init__(self, uow) -> None:
        self.uow = uow

    async def claim(
        self,
        keys: list[MatchKey],
        *,
        owner_id: str | None,
        now: datetime,
        lead_id: uuid.UUID | None = None,
        account_id: uuid.UUID | None = None,
    ) -> set[MatchKey]:
        """Register ``keys`` for ``owner_id``; returns the ones this call registered first.

        A key another transaction is registering right now blocks here until that one ends,
        so of two concurrent registrations exactly one claims each key. ``keys`` must be
        sorted (every caller locks keys in the same order: no deadlock).
        """
        if not keys:
            return set()
        rows = [
            {
                "kind": k.kind.value,
                "value": k.value,
                "owner_id": owner_id,
                "lead_id": lead_id,
                "account_id": account_id,
                "created_at": now,
            }
            for k in keys
        ]
        # Rows as parameters (one cached statement, sent as one multi-row INSERT by SQLAlchemy's
        # insertmanyvalues), not .values(rows): that is compiled anew on every call (~2 ms).
        result = await self.uow.execute(_CLAIM_KEYS, rows)
        return {MatchKey(MatchKind(r.kind), r.value) for r in result}

    async def registered(self, keys: list[MatchKey]) -> list[Any]:
        """The rows of ``keys`` (first registration first), locked against a concurrent override."""
        if not keys:
            return []
        pairs = [(k.kind.value, k.value) for k in keys]
        query = (
            select(customer_keys)
            .where(tuple_(customer_keys.c.kind, customer_keys.c.value).in_(pairs))
            .order_by(customer_keys.c.created_at, customer_keys.c.kind, customer_keys.c.value)
            .with_for_update()
        )
        return list((await self.uow.execute(query)).all())

    async def transfer(self, keys: list[MatchKey], owner_id: str | None) -> None:
        if keys:
            pairs = [(k.kind.value, k.value) for k in keys]
            await self.uow.execute(
                update(customer_keys)
                .where(tuple_(customer_keys.c.kind, customer_keys.c.value).in_(pairs))
                .values(owner_id=owner_id)
            )

    async def move_lead(self, from_lead: uuid.UUID, into_lead: uuid.UUID, owner_id: str | None) -> None:
        """A merged lead's keys become its survivor's (and its owner's)."""
        await self.uow.execute(
            update(customer_keys)
            .where(customer_keys.c.lead_id == from_lead)
            .values(lead_id=into_lead, owner_id=owner_id)
        )

    async def follow_lead(self, lead_id: uuid.UUID, owner_id: str | None) -> None:
        """The keys this lead registered go with it to its new owner (or to the pool: NULL)."""
        await self.uow.execute(
            update(customer_keys).where(customer_keys.c.lead_id == lead_id).values(owner_id=owner_id)
        )

    async def link_account(self, key: MatchKey, *, account_id: uuid.UUID, owner_id: str, now: datetime) -> None:
        """An account's key: registered for the account's owner unless someone registered it first."""
        statement = pg_insert(customer_keys).values(
            kind=key.kind.value, value=key.value, owner_id=owner_id, account_id=account_id, created_at=now
        )
        await self.uow.execute(
            statement.on_conflict_do_update(
                constraint="pk_customer_keys",
                set_={"account_id": func.coalesce(customer_keys.c.account_id, statement.excluded.account_id)},
            )
        )

    async def claim_many(self, entries: list[KeyRegistration]) -> set[MatchKey]:
        """:meth:`claim` for keys of several leads at once (an import chunk): one statement, keys in
        sorted order like every claim; returns the keys that were not registered before."""
        if not entries:
            return set()
        ordered = sorted(entries, key=lambda e: (e.kind, e.value))
        columns = {name: [getattr(e, name) for e in ordered] for name in _CLAIM_COLUMNS}
        result = await self.uow.execute(_claim_from_arrays(), columns)
        return {MatchKey(MatchKind(r.kind), r.value) for r in result}

    async def transfer_many(self, owners: list[tuple[MatchKey, str]]) -> None:
        """:meth:`transfer` of several keys, each to its own owner, in one statement."""
        if owners:
            given = (
                func.unnest(
                    bindparam("kinds", type_=ARRAY(Text)),
                    bindparam("values", type_=ARRAY(Text)),
                    bindparam("owners", type_=ARRAY(Text)),
                )
                .table_valued("kind", "value", "owner_id")
                .render_derived()
            )
            await self.uow.execute(
                update(customer_keys)
                .where(customer_keys.c.kind == given.c.kind, customer_keys.c.value == given.c.value)
                .values(owner_id=given.c.owner_id),
                {
                    "kinds": [k.kind.value for k, _ in owners],
                    "values": [k.value for k, _ in owners],
                    "owners": [o for _, o in owners],
                },
            )


class OwnershipConflicts:
    """Recorded when a rep registers a customer another rep registered first."""

    def __init__(self, uow) -> None:
        self.uow = uow

    async def record(self, lead_id: uuid.UUID, claimant_id: str, rows: list[Any], now: datetime) -> None:
        if rows:
            await self.uow.execute(
                ownership_conflicts.insert(),
                [
                    {
                        "id": uuid.uuid4(),
                        "lead_id": lead_id,
                        "owner_id": r.owner_id,
                        "claimant_id": claimant_id,
                        "kind": r.kind,
                        "value": r.value,
                        "created_at": now,
                    }
                    for r in rows
                ],
            )

    async def resolve(self, lead_id: uuid.UUID, *, by: str, resolution: str, now: datetime) -> None:
        await self.uow.execute(
            update(ownership_conflicts)
            .where(ownership_conflicts.c.lead_id == lead_id, ownership_conflicts.c.resolved_at.is_(None))
            .values(resolved_at=now, resolved_by=by, resolution=resolution)
        )

    async def of_lead(self, lead_id: uuid.UUID) -> list[Any]:
        query = (
            select(ownership_conflicts)
            .where(ownership_conflicts.c.lead_id == lead_id)
            .order_by(ownership_conflicts.c.created_at, ownership_conflicts.c.id)
        )
        return list((await self.uow.execute(query)).all())


# -- conversion, contacts, opportunities ---------------------------------------------------

contacts = Table(
    "contacts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("account_id", UUID(as_uuid=True), nullable=False),
    Column("name", Text, nullable=False),
    Column("title", Text),
    Column("phone", Text),
    Column("email", Text),
    utc_timestamp("created_at", nullable=False),
    Index("ix_contacts_account_id_created_at_id", "account_id", "created_at", "id"),
)

# One row per converted lead: the primary key makes a second conversion of a lead impossible.
lead_conversions = Table(
    "lead_conversions",
    metadata,
    Column("lead_id", UUID(as_uuid=True), primary_key=True),
    Column("account_id", UUID(as_uuid=True), nullable=False),
    Column("contact_id", UUID(as_uuid=True), nullable=False),
    Column("opportunity_id", UUID(as_uuid=True), nullable=False),
    Column("converted_by", Text, nullable=False),
    utc_timestamp("converted_at", nullable=False),
)

opportunities = Table(
    "opportunities",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("account_id", UUID(as_uuid=True), nullable=False),
    Column("contact_id", UUID(as_uuid=True)),
    Column("lead_id", UUID(as_uuid=True)),
    Column("name", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("team", Text),
    Column("region", Text),
    Column("source", Text),
    Column("stage", Text, nullable=False),
    Column("probability", Numeric(5, 2), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("weighted_value", Numeric(14, 2), nullable=False),
    Column("expected_close_date", Date),
    Column("lost_reason", Text),
    Column("accepted_quote_id", UUID(as_uuid=True)),
    utc_timestamp("stage_entered_at", nullable=False),
    utc_timestamp("closed_at"),
    utc_timestamp("created_at", nullable=False),
    # Two list orders (created, and weighted value descending), each under every scope.
    Index("ix_opportunities_created_at_id", "created_at", "id"),
    Index("ix_opportunities_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_opportunities_team_created_at_id", "team", "created_at", "id"),
    Index("ix_opportunities_region_created_at_id", "region", "created_at", "id"),
    Index("ix_opportunities_account_id_created_at_id", "account_id", "created_at", "id"),
    Index("ix_opportunities_weighted_value_id", "weighted_value", "id"),
    Index("ix_opportunities_owner_id_weighted_value_id", "owner_id", "weighted_value", "id"),
    Index("ix_opportunities_team_weighted_value_id", "team", "weighted_value", "id"),
    Index("ix_opportunities_region_weighted_value_id", "region", "weighted_value", "id"),
    Index("ix_opportunities_stage_weighted_value_id", "stage", "weighted_value", "id"),
)

# Every stage an opportunity went through, for the funnel's time in stage and conversion.
opportunity_stages = Table(
    "opportunity_stages",
    metadata,
    Column("opportunity_id", UUID(as_uuid=True), nullable=False),
    Column("stage", Text, nullable=False),
    utc_timestamp("entered_at", nullable=False),
    utc_timestamp("left_at"),
    PrimaryKeyConstraint("opportunity_id", "entered_at", "stage", name="pk_opportunity_stages"),
    Index("ix_opportunity_stages_stage_entered_at", "stage", "entered_at"),
)


class Contacts:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def add(self, contact: Contact) -> None:
        await self.uow.execute(contacts.insert(), _contact_row(contact))

    async def get(self, contact_id: uuid.UUID) -> Contact | None:
        row = (await self.uow.execute(select(contacts).where(contacts.c.id == contact_id))).first()
        return None if row is None else _contact(row)

    async def of_account(self, account_id: uuid.UUID, page) -> tuple[list[Contact], str | None]:
        query = select(contacts).where(contacts.c.account_id == account_id)
        rows, next_cursor = await fetch_page(self.uow, query, (contacts.c.created_at, contacts.c.id), page)
        return [_contact(r) for r in rows], next_cursor


def _contact_row(contact: Contact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in contacts.c.keys()}


def _contact(row: Any) -> Contact:
    return Contact(**row._mapping)


class LeadConversions:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def of_lead(self, lead_id: uuid.UUID) -> Any | None:
        return (await self.uow.execute(select(lead_conversions).where(lead_conversions.c.lead_id == lead_id))).first()

    async def record(self, lead_id: uuid.UUID, *, account_id, contact_id, opportunity_id, by: str, now) -> None:
        await self.uow.execute(
            lead_conversions.insert(),
            {
                "lead_id": lead_id,
                "account_id": account_id,
                "contact_id": contact_id,
                "opportunity_id": opportunity_id,
                "converted_by": by,
                "converted_at": now,
            },
        )


class OpportunityRepository(Repository[Opportunity]):
    table = opportunities
    noun = "opportunity"

    def __init__(self, uow) -> None:
        super().__init__(uow)
        # The stage each loaded opportunity was in: a save that changes it closes that stage.
        self._loaded_stage_entered: dict[uuid.UUID, datetime | None] = {}

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        t = opportunities.c
        return sales_scope(principal, owner=t.owner_id, team=t.team, region=t.region)

    async def add(self, opportunity: Opportunity) -> None:
        await super().add(opportunity)
        await self._enter_stage(opportunity)

    async def save(self, opportunity: Opportunity) -> None:
        entered_before = self._loaded_stage_entered[opportunity.id]
        await super().save(opportunity)
        if entered_before != opportunity.stage_entered_at:
            await self.uow.execute(
                update(opportunity_stages)
                .where(
                    opportunity_stages.c.opportunity_id == opportunity.id,
                    opportunity_stages.c.entered_at == entered_before,
                )
                .values(left_at=opportunity.stage_entered_at)
            )
            await self._enter_stage(opportunity)
            self._loaded_stage_entered[opportunity.id] = opportunity.stage_entered_at

    async def _enter_stage(self, opportunity: Opportunity) -> None:
        await self.uow.execute(
            opportunity_stages.insert(),
            {
                "opportunity_id": opportunity.id,
                "stage": opportunity.stage.value,
                "entered_at": opportunity.stage_entered_at,
                "left_at": None,
            },
        )

    async def list_ranked(
        self, principal: Principal, page, *, filters: dict[str, Any], by_weighted_value: bool
    ) -> tuple[list[Opportunity], str | None]:
        """Oldest first, or by weighted value, highest first (keyset over an index either way)."""
        query = select(opportunities).where(self.visible_to(principal))
        for column, value in filters.items():
            if value is not None:
                query = query.where(opportunities.c[column] == value)
        if by_weighted_value:
            keys = (opportunities.c.weighted_value, opportunities.c.id)
            rows, next_cursor = await fetch_page(self.uow, query, keys, page, descending=True)
        else:
            keys = (opportunities.c.created_at, opportunities.c.id)
            rows, next_cursor = await fetch_page(self.uow, query, keys, page)
        return [self.from_row(r) for r in rows], next_cursor

    def to_row(self, o: Opportunity) -> dict[str, Any]:
        return {
            "id": o.id,
            "version": o.version,
            "account_id": o.account_id,
            "contact_id": o.contact_id,
            "lead_id": o.lead_id,
            "name": o.name,
            "owner_id": o.owner_id,
            "team": o.team,
            "region": o.region,
            "source": o.source,
            "stage": o.stage.value,
            "probability": o.probability,
            "amount": o.amount,
            "currency": o.currency,
            "weighted_value": o.weighted_value,
            "expected_close_date": o.expected_close_date,
            "lost_reason": o.lost_reason,
            "accepted_quote_id": o.accepted_quote_id,
            "stage_entered_at": o.stage_entered_at,
            "closed_at": o.closed_at,
            "created_at": o.created_at,
        }

    def from_row(self, row: Any) -> Opportunity:
        values = dict(row._mapping)
        del values["weighted_value"]
        values["stage"] = Stage(values["stage"])
        opportunity = Opportunity(**values)
        self._loaded_stage_entered[opportunity.id] = opportunity.stage_entered_at
        return opportunity


# -- quotes -----------------------------------------------------------------------------------

quote_number_seq = Sequence("quote_number_seq", metadata=metadata)

quotes = Table(
    "quotes",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("number", Text, nullable=False, unique=True),
    Column("opportunity_id", UUID(as_uuid=True), nullable=False),
    Column("account_id", UUID(as_uuid=True), nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("team", Text),
    Column("region", Text),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("extra_discount_pct", Numeric(5, 2), nullable=False),
    Column("subtotal_amount", Numeric(14, 2), nullable=False),
    Column("total_amount", Numeric(14, 2), nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("price_rules_version", Integer, nullable=False),
    Column("discount_policy_version", Text, nullable=False),
    Column("payment_terms", Text),
    Column("delivery_address", Text),
    Column("created_by", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Column("accepted_by", Text),
    utc_timestamp("accepted_at"),
    Index("ix_quotes_opportunity_id_created_at_id", "opportunity_id", "created_at", "id"),
    Index("ix_quotes_created_at_id", "created_at", "id"),
    Index("ix_quotes_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_quotes_team_created_at_id", "team", "created_at", "id"),
    Index("ix_quotes_region_created_at_id", "region", "created_at", "id"),
    # At most one accepted quote per opportunity (the one it is won on).
    Index(
        "uq_quotes_opportunity_id_accepted",
        "opportunity_id",
        unique=True,
        postgresql_where=text("status = 'accepted'"),
    ),
)

QUOTE_LINES = json_codec(list[QuoteLine])


class QuoteRepository(Repository[Quote]):
    table = quotes
    noun = "quote"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return sales_scope(principal, owner=quotes.c.owner_id, team=quotes.c.team, region=quotes.c.region)

    async def next_number(self, now: datetime) -> str:
        return await next_document_number(self.uow, quote_number_seq, "QT", now)

    async def accepted_for(self, opportunity_id: uuid.UUID) -> Quote | None:
        query = select(quotes).where(quotes.c.opportunity_id == opportunity_id, quotes.c.status == "accepted")
        row = (await self.uow.execute(query)).first()
        return None if row is None else self.from_row(row)

    def to_row(self, q: Quote) -> dict[str, Any]:
        return {
            "id": q.id,
            "version": q.version,
            "number": q.number,
            "opportunity_id": q.opportunity_id,
            "account_id": q.account_id,
            "owner_id": q.owner_id,
            "team": q.team,
            "region": q.region,
            "status": q.status.value,
            "currency": q.currency,
            "lines": QUOTE_LINES.dump_python(list(q.lines), mode="json"),
            "extra_discount_pct": q.extra_discount_pct,
            "subtotal_amount": q.subtotal_amount,
            "total_amount": q.total_amount,
            "valid_until": q.valid_until,
            "price_rules_version": q.price_rules_version,
            "discount_policy_version": q.discount_policy_version,
            "payment_terms": q.payment_terms,
            "delivery_address": q.delivery_address,
            "created_by": q.created_by,
            "created_at": q.created_at,
            "accepted_by": q.accepted_by,
            "accepted_at": q.accepted_at,
        }

    def from_row(self, row: Any) -> Quote:
        values = dict(row._mapping)
        del values["subtotal_amount"], values["total_amount"]  # computed from the lines
        values["lines"] = tuple(QUOTE_LINES.validate_python(values["lines"]))
        values["status"] = QuoteStatus(values["status"])
        return Quote(**values)


# -- sales reps and teams, assignment ----------------------------------------------------------

sales_teams = Table(
    "sales_teams",
    metadata,
    Column("id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("region", Text),
    Column("manager_id", Text),
    utc_timestamp("created_at", nullable=False),
    Index("ix_sales_teams_created_at_id", "created_at", "id"),
    Index("ix_sales_teams_manager_id", "manager_id"),
)

sales_reps = Table(
    "sales_reps",
    metadata,
    Column("id", Text, primary_key=True),  # the rep's token subject
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("team_id", Text),
    Column("region", Text),
    Column("industries", ARRAY(Text), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("status", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Index("ix_sales_reps_created_at_id", "created_at", "id"),
    Index("ix_sales_reps_team_id_created_at_id", "team_id", "created_at", "id"),
    Index("ix_sales_reps_status_created_at_id", "status", "created_at", "id"),
    Index("ix_sales_reps_status_region", "status", "region"),
)

# The round-robin position of each assignment rule: the rep who got its last lead.
assignment_cursors = Table(
    "assignment_cursors",
    metadata,
    Column("rule", Text, primary_key=True),
    Column("last_rep_id", Text, nullable=False),
)


class SalesTeamRepository(Repository[SalesTeam]):
    table = sales_teams
    noun = "sales team"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        """A manager sees their team (the token's ``team``), a director their region's teams, a rep
        their own team, admin all."""
        if principal is None:
            return true()
        own = sales_teams.c.id.in_(select(sales_reps.c.team_id).where(sales_reps.c.id == principal.sub))
        t = sales_teams.c
        return or_(sales_scope(principal, owner=t.manager_id, team=t.id, region=t.region), own)

    def to_row(self, team: SalesTeam) -> dict[str, Any]:
        return {
            "id": team.id,
            "version": team.version,
            "name": team.name,
            "region": team.region,
            "manager_id": team.manager_id,
            "created_at": team.created_at,
        }

    def from_row(self, row: Any) -> SalesTeam:
        return SalesTeam(
            id=row.id,
            version=row.version,
            name=row.name,
            region=row.region,
            manager_id=row.manager_id,
            created_at=row.created_at,
        )


class SalesRepRepository(Repository[SalesRep]):
    table = sales_reps
    noun = "sales rep"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        """A rep sees themselves, a manager their teams' reps, a director their region's."""
        r = sales_reps.c
        return sales_scope(principal, owner=r.id, team=r.team_id, region=r.region)

    async def lock(self, rep_id: str) -> SalesRep | None:
        return await self.get(rep_id, None, for_update=True)  # type: ignore[arg-type]

    async def team_of(self, rep_id: str, *, fallback: str | None = None) -> str | None:
        """The rep's team as the CRM knows it, else ``fallback`` (e.g. their token's team claim)."""
        query = select(sales_reps.c.team_id).where(sales_reps.c.id == rep_id)
        team = (await self.uow.execute(query)).scalar_one_or_none()
        return team if team is not None else fallback

    async def lock_candidates(self, region: str | None) -> list[SalesRep]:
        """The active reps who may take a lead of ``region``, locked in id order: concurrent
        assignments then see each other's leads in the load counts (and never deadlock)."""
        return await self.lock_candidates_of({region})

    async def lock_candidates_of(self, regions: set[str | None]) -> list[SalesRep]:
        """:meth:`lock_candidates` for leads of any of ``regions`` (None: a lead without a region)."""
        query = select(sales_reps).where(sales_reps.c.status == RepStatus.ACTIVE.value)
        if None not in regions:
            query = query.where(or_(sales_reps.c.region.in_(list(regions)), sales_reps.c.region.is_(None)))
        query = query.order_by(sales_reps.c.id).with_for_update()
        return [self.from_row(row) for row in await self.uow.execute(query)]

    async def teams(self, rep_ids: set[str]) -> dict[str, str | None]:
        """Each known rep's team."""
        if not rep_ids:
            return {}
        query = select(sales_reps.c.id, sales_reps.c.team_id).where(sales_reps.c.id.in_(list(rep_ids)))
        return {rep_id: team for rep_id, team in await self.uow.execute(query)}

    async def loads(self, rep_ids: list[str]) -> dict[str, int]:
        """How many leads each rep owns now."""
        if not rep_ids:
            return {}
        query = (
            select(leads.c.owner_id, func.count())
            .where(leads.c.owner_id.in_(rep_ids), leads.c.merged_into_lead_id.is_(None))
            .group_by(leads.c.owner_id)
        )
        return {owner: n for owner, n in await self.uow.execute(query)}

    def to_row(self, rep: SalesRep) -> dict[str, Any]:
        return {
            "id": rep.id,
            "version": rep.version,
            "name": rep.name,
            "team_id": rep.team_id,
            "region": rep.region,
            "industries": list(rep.industries),
            "capacity": rep.capacity,
            "status": rep.status.value,
            "created_at": rep.created_at,
        }

    def from_row(self, row: Any) -> SalesRep:
        return SalesRep(
            id=row.id,
            version=row.version,
            name=row.name,
            team_id=row.team_id,
            region=row.region,
            industries=tuple(row.industries),
            capacity=row.capacity,
            status=RepStatus(row.status),
            created_at=row.created_at,
        )

    async def move_open_work(self, rep_id: str, team: str | None) -> dict[str, int]:
        """Stamp ``rep_id``'s open work with their new ``team``, one UPDATE per table, each row's
        version bumped (a new ETag): leads not converted or merged, all their accounts, their open
        opportunities and those opportunities' quotes. Closed work keeps the team it was done in.
        Quotes go before opportunities: accepting a quote locks the quote, then its opportunity."""
        closed = [stage.value for stage in Stage if not stage.is_open]
        open_opportunity = (opportunities.c.owner_id == rep_id) & opportunities.c.stage.not_in(closed)
        converted = select(lead_conversions.c.lead_id).where(lead_conversions.c.lead_id == leads.c.id).exists()
        statements = {
            "leads": update(leads).where(leads.c.owner_id == rep_id, leads.c.merged_into_lead_id.is_(None), ~converted),
            "accounts": update(accounts).where(accounts.c.owner_id == rep_id),
            "quotes": update(quotes).where(quotes.c.opportunity_id == opportunities.c.id, open_opportunity),
            "opportunities": update(opportunities).where(open_opportunity),
        }
        moved = {}
        for name, statement in statements.items():
            table = statement.table
            statement = statement.where(table.c.team.is_distinct_from(team))
            result = await self.uow.execute(statement.values(team=team, version=table.c.version + 1))
            moved[name] = result.rowcount
        return moved


class AssignmentCursors:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def get(self, rule: str) -> str | None:
        query = select(assignment_cursors.c.last_rep_id).where(assignment_cursors.c.rule == rule)
        return (await self.uow.execute(query)).scalar()

    async def set(self, rule: str, rep_id: str) -> None:
        statement = pg_insert(assignment_cursors).values(rule=rule, last_rep_id=rep_id)
        await self.uow.execute(
            statement.on_conflict_do_update(index_elements=[assignment_cursors.c.rule], set_={"last_rep_id": rep_id})
        )

    async def get_many(self, rules: set[str]) -> dict[str, str | None]:
        query = select(assignment_cursors.c.rule, assignment_cursors.c.last_rep_id).where(
            assignment_cursors.c.rule.in_(list(rules))
        )
        return {rule: rep_id for rule, rep_id in await self.uow.execute(query)}

    async def set_many(self, last_reps: dict[str, str]) -> None:
        """Each rule's rep who got its last lead (in rule order: concurrent writers never deadlock)."""
        if last_reps:
            statement = pg_insert(assignment_cursors)
            await self.uow.execute(
                statement.on_conflict_do_update(
                    index_elements=[assignment_cursors.c.rule], set_={"last_rep_id": statement.excluded.last_rep_id}
                ),
                [{"rule": rule, "last_rep_id": last_reps[rule]} for rule in sorted(last_reps)],
            )


# -- public pool claims, activities ------------------------------------------------------------

# One row per claim from the pool: the per-rep daily claim limit counts them.
lead_claims = Table(
    "lead_claims",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("rep_id", Text, nullable=False),
    Column("lead_id", UUID(as_uuid=True), nullable=False),
    utc_timestamp("claimed_at", nullable=False),
    Index("ix_lead_claims_rep_id_claimed_at", "rep_id", "claimed_at"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("lead_id", UUID(as_uuid=True)),
    Column("account_id", UUID(as_uuid=True)),
    Column("kind", Text, nullable=False),
    Column("outcome", Text),
    Column("notes", Text),
    Column("logged_by", Text, nullable=False),
    utc_timestamp("occurred_at", nullable=False),
    utc_timestamp("next_follow_up_at"),
    Column("first_contact", Boolean, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Column("status", Text, nullable=False, server_default="done"),
    Column("reviewed_by", Text),
    utc_timestamp("reported_at"),
    Index("ix_activities_lead_id_created_at_id", "lead_id", "created_at", "id"),
    Index("ix_activities_account_id_created_at_id", "account_id", "created_at", "id"),
)


class LeadClaims:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def count_since(self, rep_id: str, since: datetime) -> int:
        query = select(func.count()).where(lead_claims.c.rep_id == rep_id, lead_claims.c.claimed_at >= since)
        return (await self.uow.execute(query)).scalar_one()

    async def record(self, rep_id: str, lead_id: uuid.UUID, now: datetime) -> None:
        await self.uow.execute(
            lead_claims.insert().values(id=uuid.uuid4(), rep_id=rep_id, lead_id=lead_id, claimed_at=now)
        )


class ActivityRepository(Repository[Activity]):
    """Activities are reached through their lead or account, whose visibility the handler checks."""

    table = activities
    noun = "activity"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return true()

    async def of_leads(self, lead_ids: list[uuid.UUID], page: PageParams) -> tuple[list[Activity], str | None]:
        query = select(activities).where(activities.c.lead_id.in_(lead_ids))
        rows, next_cursor = await fetch_page(self.uow, query, (activities.c.created_at, activities.c.id), page)
        return [self.from_row(row) for row in rows], next_cursor

    async def contact_since(self, account_id: uuid.UUID, since: datetime) -> bool:
        query = select(activities.c.id).where(
            activities.c.account_id == account_id,
            activities.c.kind.in_([k.value for k in CONTACT_KINDS]),
            activities.c.status == ActivityStatus.DONE.value,
            activities.c.occurred_at >= since,
        )
        return (await self.uow.execute(query.limit(1))).first() is not None

    def to_row(self, a: Activity) -> dict[str, Any]:
        return {
            "id": a.id,
            "version": a.version,
            "lead_id": a.lead_id,
            "account_id": a.account_id,
            "kind": a.kind.value,
            "outcome": a.outcome,
            "notes": a.notes,
            "logged_by": a.logged_by,
            "occurred_at": a.occurred_at,
            "next_follow_up_at": a.next_follow_up_at,
            "first_contact": a.first_contact,
            "created_at": a.created_at,
            "status": a.status.value,
            "reviewed_by": a.reviewed_by,
            "reported_at": a.reported_at,
        }

    def from_row(self, row: Any) -> Activity:
        return Activity(
            id=row.id,
            version=row.version,
            lead_id=row.lead_id,
            account_id=row.account_id,
            kind=ActivityKind(row.kind),
            outcome=row.outcome,
            notes=row.notes,
            logged_by=row.logged_by,
            occurred_at=row.occurred_at,
            next_follow_up_at=row.next_follow_up_at,
            first_contact=row.first_contact,
            created_at=row.created_at,
            status=ActivityStatus(row.status),
            reviewed_by=row.reviewed_by,
            reported_at=row.reported_at,
        )


# -- targets ----------------------------------------------------------------------------------

targets = Table(
    "targets",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("scope", Text, nullable=False),
    Column("team", Text, nullable=False),
    Column("region", Text),
    Column("owner_id", Text, nullable=False),
    Column("parent_id", UUID(as_uuid=True)),
    Column("period_kind", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    utc_timestamp("starts_at", nullable=False),
    utc_timestamp("ends_at", nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("created_by", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Index("ix_targets_created_at_id", "created_at", "id"),
    Index("ix_targets_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_targets_team_created_at_id", "team", "created_at", "id"),
    Index("ix_targets_region_created_at_id", "region", "created_at", "id"),
    Index("ix_targets_period_created_at_id", "period", "created_at", "id"),
    Index("ix_targets_parent_id", "parent_id"),
    Index("uq_targets_team_period", "team", "period", unique=True, postgresql_where=text("scope = 'team'")),
)

# What each rep signed, from contract.signed (one row per contract): targets' achievement.
signed_contracts = Table(
    "signed_contracts",
    metadata,
    Column("contract_id", UUID(as_uuid=True), primary_key=True),
    Column("contract_number", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total_amount", Numeric(14, 2), nullable=False),
    utc_timestamp("signed_at", nullable=False),
    Index("ix_signed_contracts_owner_id_signed_at", "owner_id", "signed_at"),
)


def _achieved() -> Any:
    """Per target row: what its rep (or its team's reps) signed in its period and currency."""
    reps = targets.alias("reps")
    c = signed_contracts.c
    rep_ids = (
        select(reps.c.owner_id)
        .where(or_(reps.c.parent_id == targets.c.id, (reps.c.id == targets.c.id) & (reps.c.scope == "rep")))
        .correlate_except(reps)  # the outer row's target, two levels up
    )
    return (
        select(func.coalesce(func.sum(c.total_amount), 0))
        .where(
            c.owner_id.in_(rep_ids),
            c.currency == targets.c.currency,
            c.signed_at >= targets.c.starts_at,
            c.signed_at < targets.c.ends_at,
        )
        .scalar_subquery()
        .label("achieved_amount")
    )


class TargetRepository(Repository[Target]):
    table = targets
    noun = "target"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return sales_scope(principal, owner=targets.c.owner_id, team=targets.c.team, region=targets.c.region)

    async def lock_team_period(self, team: str, period: str) -> bool:
        """Serialise setting one team's target for one period; True if it exists already."""
        await self.uow.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"{team}/{period}", 0))))
        query = select(targets.c.id).where(
            targets.c.team == team, targets.c.period == period, targets.c.scope == "team"
        )
        return (await self.uow.execute(query)).first() is not None

    async def with_achievement(
        self, principal: Principal, page, *, filters: dict[str, Any], target_id: uuid.UUID | None = None
    ) -> tuple[list[tuple[Target, Any]], str | None]:
        query = select(targets, _achieved()).where(self.visible_to(principal))
        if target_id is not None:
            query = query.where(targets.c.id == target_id)
        for column, value in filters.items():
            if value is not None:
                query = query.where(targets.c[column] == value)
        rows, next_cursor = await fetch_page(self.uow, query, (targets.c.created_at, targets.c.id), page)
        return [(self.from_row(r), r.achieved_amount) for r in rows], next_cursor

    def to_row(self, t: Target) -> dict[str, Any]:
        row = {name: getattr(t, name) for name in targets.c.keys()}
        return {**row, "scope": t.scope.value, "period_kind": t.period_kind.value}

    def from_row(self, row: Any) -> Target:
        values = {name: row._mapping[name] for name in targets.c.keys()}
        values["scope"], values["period_kind"] = TargetScope(values["scope"]), PeriodKind(values["period_kind"])
        return Target(**values)


class SignedContracts:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def record(self, row: dict[str, Any]) -> None:
        await self.uow.execute(pg_insert(signed_contracts).values(row).on_conflict_do_nothing())


# -- customer timeline ------------------------------------------------------------------------

# What other services announced about a customer (one row per event).
customer_events = Table(
    "customer_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    utc_timestamp("occurred_at", nullable=False),
    Column("title", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Index("ix_customer_events_customer_id_occurred_at_event_id", "customer_id", "occurred_at", "event_id"),
)

# The timeline reads an account's activities newest first.
Index("ix_activities_account_id_occurred_at_id", activities.c.account_id, activities.c.occurred_at, activities.c.id)


class CustomerEvents:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def record(self, event_id: uuid.UUID, entry: CustomerEvent) -> None:
        values = {name: getattr(entry, name) for name in entry.__slots__}
        await self.uow.execute(pg_insert(customer_events).values(event_id=event_id, **values).on_conflict_do_nothing())

    async def timeline(self, account: Account, page) -> tuple[list[Any], str | None]:
        """The account's activities and its customer's events, newest first, one keyset over both."""
        a, e = activities.c, customer_events.c
        acts = select(
            a.occurred_at.label("at"),
            cast(a.id, Text).label("id"),
            literal("activity").label("source"),
            a.kind.label("type"),
            func.coalesce(a.outcome, a.kind).label("title"),
            literal(None, Text).label("reference"),
            func.jsonb_build_object("notes", a.notes, "logged_by", a.logged_by, "outcome", a.outcome).label("details"),
        ).where(a.account_id == account.id)
        events = select(
            e.occurred_at, cast(e.event_id, Text), literal("event"), e.type, e.title, e.reference, e.details
        ).where(e.customer_id == account.customer_id)
        merged = union_all(acts, events).subquery("timeline")
        return await fetch_page(self.uow, select(merged), (merged.c.at, merged.c.id), page, descending=True)


# -- reports ----------------------------------------------------------------------------------

Index("ix_opportunities_source_created_at", opportunities.c.source, opportunities.c.created_at)


def _report_where(
    principal: Principal, owner: Any, columns: Any, filters: dict[str, Any], moment: Any, start, end
) -> list[ColumnElement[bool]]:
    """A report's rows: in the caller's sales scope (by ``owner`` and the rows' team and region),
    matching the filters (column: value, None ignored), with ``moment`` in [start, end)."""
    where = [
        sales_scope(principal, owner=owner, team=columns.team, region=columns.region),
        *(columns[column] == value for column, value in filters.items() if value is not None),
    ]
    if start is not None:
        where.append(moment >= start)
    if end is not None:
        where.append(moment < end)
    return where


class FunnelQueries:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def figures(self, principal: Principal, *, currency: str, filters: dict[str, Any], created_from, created_to):
        """Per stage: (count, value) standing there now, how many reached it, average seconds in it."""
        o, h = opportunities.c, opportunity_stages.c
        where = [
            *_report_where(principal, o.owner_id, o, filters, o.created_at, created_from, created_to),
            o.currency == currency,
        ]
        current = await self.uow.execute(
            select(o.stage, func.count(), func.coalesce(func.sum(o.amount), 0)).where(*where).group_by(o.stage)
        )
        joined = opportunity_stages.join(opportunities, h.opportunity_id == o.id)
        seconds = func.extract("epoch", h.left_at - h.entered_at)
        history = await self.uow.execute(
            select(h.stage, func.count(func.distinct(h.opportunity_id)), func.avg(seconds))
            .select_from(joined)
            .where(*where)
            .group_by(h.stage)
        )
        history_rows = list(history)
        return (
            {stage: (n, value) for stage, n, value in current},
            {stage: n for stage, n, _ in history_rows},
            {stage: None if avg is None else float(avg) for stage, _, avg in history_rows},
        )


class ResponseQueries:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def figures(
        self, principal: Principal, *, filters: dict[str, Any], assigned_from, assigned_to
    ) -> tuple[dict[str, ResponseCounts], ResponseCounts | None]:
        """Per rep and in total, over the assignments made in the period that ``principal`` may
        see: one query, the total being the rollup's row."""
        a = lead_assignments.c
        where = _report_where(principal, a.rep_id, a, filters, a.assigned_at, assigned_from, assigned_to)
        # A contact logged as having happened before the assignment counts as immediate (LEAST
        # skips NULLs: no contact stays NULL, which the percentiles skip).
        seconds = func.extract("epoch", a.first_contacted_at - func.least(a.assigned_at, a.first_contacted_at))
        query = (
            select(
                a.rep_id,
                func.grouping(a.rep_id).label("is_total"),
                func.count().label("assigned"),
                func.count(a.first_contacted_at).label("contacted"),
                func.percentile_cont(0.5).within_group(seconds).label("median_seconds"),
                func.percentile_cont(0.9).within_group(seconds).label("p90_seconds"),
                func.count().filter(a.first_contacted_at <= a.first_contact_due_at).label("within_window"),
                func.count().filter(a.first_contacted_at.is_(None), a.ended_at.is_(None)).label("uncontacted"),
                func.count().filter(a.end_reason == NO_FIRST_CONTACT).label("returned_no_contact"),
                func.count().filter(a.end_reason == RELEASED).label("released"),
            )
            .where(*where)
            .group_by(func.rollup(a.rep_id))
        )
        per_rep, total = {}, None
        for row in await self.uow.execute(query):
            counts = ResponseCounts(**{name: row._mapping[name] for name in ResponseCounts.__slots__})
            if row.is_total:
                total = counts
            else:
                per_rep[row.rep_id] = counts
        return per_rep, total


# -- web-to-lead forms ---------------------------------------------------------------------------

lead_forms = Table(
    "lead_forms",
    metadata,
    Column("id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("key_sha256", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("campaign", Text),
    Column("region", Text),
    Column("industry", Text),
    Column("rate_limit_per_minute", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Index("ix_lead_forms_created_at_id", "created_at", "id"),
)

# Submissions per form and minute: the per-source rate limit (a fixed one-minute window).
lead_form_windows = Table(
    "lead_form_windows",
    metadata,
    Column("form_id", Text, nullable=False),
    utc_timestamp("window_start", nullable=False),
    Column("submissions", Integer, nullable=False),
    PrimaryKeyConstraint("form_id", "window_start", name="pk_lead_form_windows"),
)


class LeadFormRepository(Repository[LeadForm]):
    table = lead_forms
    noun = "lead form"

    def visible_to(self, principal: Principal | None) -> ColumnElement[bool]:
        return true()  # the roles that reach the form routes manage every form

    async def count_submission(self, form_id: str, window_start: datetime) -> int:
        """Count one submission in its minute; returns the minute's count so far (this one included)."""
        statement = pg_insert(lead_form_windows).values(form_id=form_id, window_start=window_start, submissions=1)
        statement = statement.on_conflict_do_update(
            constraint="pk_lead_form_windows", set_={"submissions": lead_form_windows.c.submissions + 1}
        )
        count = (await self.uow.execute(statement.returning(lead_form_windows.c.submissions))).scalar_one()
        if count == 1:  # a new minute: forget this form's old ones
            await self.uow.execute(
                lead_form_windows.delete().where(
                    lead_form_windows.c.form_id == form_id, lead_form_windows.c.window_start < window_start
                )
            )
        return count

    def to_row(self, form: LeadForm) -> dict[str, Any]:
        return {
            "id": form.id,
            "version": form.version,
            "name": form.name,
            "key_sha256": form.key_sha256,
            "source": form.source.value,
            "campaign": form.campaign,
            "region": form.region,
            "industry": form.industry,
            "rate_limit_per_minute": form.rate_limit_per_minute,
            "active": form.active,
            "created_at": form.created_at,
        }

    def from_row(self, row: Any) -> LeadForm:
        return LeadForm(
            id=row.id,
            version=row.version,
            name=row.name,
            key_sha256=row.key_sha256,
            source=LeadSource(row.source),
            campaign=row.campaign,
            region=row.region,
            industry=row.industry,
            rate_limit_per_minute=row.rate_limit_per_minute,
            active=row.active,
            created_at=row.created_at,
        )


# -- behaviour score -----------------------------------------------------------------------------

lead_interactions = Table(
    "lead_interactions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("lead_id", UUID(as_uuid=True), nullable=False),
    Column("type", Text, nullable=False),
    utc_timestamp("occurred_at", nullable=False),
    Column("recorded_by", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    Index("ix_lead_interactions_lead_id_created_at_id", "lead_id", "created_at", "id"),
)

# The decayed sum of a lead's interaction points as of ``as_of`` (see domain/behaviour.py).
lead_scores = Table(
    "lead_scores",
    metadata,
    Column("lead_id", UUID(as_uuid=True), primary_key=True),
    Column("points", Float, nullable=False),
    utc_timestamp("as_of"),
)


class LeadScores:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def lock(self, lead_id: uuid.UUID) -> tuple[float, datetime | None]:
        """The lead's running total, locked (created empty first, so concurrent first interactions serialise)."""
        await self.uow.execute(pg_insert(lead_scores).values(lead_id=lead_id, points=0.0).on_conflict_do_nothing())
        row = (
            await self.uow.execute(select(lead_scores).where(lead_scores.c.lead_id == lead_id).with_for_update())
        ).one()
        return row.points, row.as_of

    async def get(self, lead_id: uuid.UUID) -> tuple[float, datetime | None]:
        row = (await self.uow.execute(select(lead_scores).where(lead_scores.c.lead_id == lead_id))).first()
        return (row.points, row.as_of) if row else (0.0, None)

    async def record(self, lead_id: uuid.UUID, points: float, as_of: datetime, interaction: dict[str, Any]) -> None:
        await self.uow.execute(lead_interactions.insert().values(lead_id=lead_id, **interaction))
        await self.uow.execute(
            update(lead_scores).where(lead_scores.c.lead_id == lead_id).values(points=points, as_of=as_of)
        )

    async def merge(self, from_lead: uuid.UUID, into_lead: uuid.UUID, model: BehaviourModel) -> None:
        """The merged lead's points join the survivor's (its own row and interactions stay)."""
        points, as_of = await self.get(from_lead)
        if as_of is None:
            return
        total, total_as_of = await self.lock(into_lead)
        total, total_as_of = model.combine(total, total_as_of, points, as_of)
        await self.uow.execute(
            update(lead_scores).where(lead_scores.c.lead_id == into_lead).values(points=total, as_of=total_as_of)
        )

    async def interactions(self, lead_id: uuid.UUID, page: PageParams) -> tuple[list[Any], str | None]:
        query = select(lead_interactions).where(lead_interactions.c.lead_id == lead_id)
        columns = (lead_interactions.c.created_at, lead_interactions.c.id)
        return await fetch_page(self.uow, query, columns, page)


# -- bulk import -----------------------------------------------------------------------------------

lead_imports = Table(
    "lead_imports",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("file_sha256", Text, nullable=False, unique=True),  # the same file imports once
    Column("filename", Text),
    Column("status", Text, nullable=False),  # running, done
    Column("rows_total", Integer, nullable=False),
    Column("rows_done", Integer, nullable=False),
    Column("created", Integer, nullable=False),
    Column("merged", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("created_by", Text, nullable=False),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("finished_at"),
)

# The parsed rows, waiting for the worker (row_number counts from 1 after the header).
lead_import_rows = Table(
    "lead_import_rows",
    metadata,
    Column("import_id", UUID(as_uuid=True), nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("data", JSONB, nullable=False),
    PrimaryKeyConstraint("import_id", "row_number", name="pk_lead_import_rows"),
)

lead_import_errors = Table(
    "lead_import_errors",
    metadata,
    Column("import_id", UUID(as_uuid=True), nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("error", Text, nullable=False),
    PrimaryKeyConstraint("import_id", "row_number", name="pk_lead_import_errors"),
)


class LeadImports:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def create(self, row: dict[str, Any], rows: list[dict[str, Any]]) -> Any | None:
        """The new import (None when this file was imported already: the unique hash says so)."""
        inserted = await self.uow.execute(
            pg_insert(lead_imports)
            .values(row)
            .on_conflict_do_nothing(index_elements=["file_sha256"])
            .returning(lead_imports.c.id)
        )
        if inserted.first() is None:
            return None
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            await self.uow.execute(
                lead_import_rows.insert(),
                [{"import_id": row["id"], "row_number": i + start + 1, "data": data} for i, data in enumerate(chunk)],
            )
        return await self.get(row["id"])

    async def by_hash(self, sha256: str) -> Any | None:
        return (await self.uow.execute(select(lead_imports).where(lead_imports.c.file_sha256 == sha256))).first()

    async def get(self, import_id: uuid.UUID, *, for_update: bool = False) -> Any | None:
        query = select(lead_imports).where(lead_imports.c.id == import_id)
        return (await self.uow.execute(query.with_for_update() if for_update else query)).first()

    async def rows(self, import_id: uuid.UUID, after: int, limit: int) -> list[Any]:
        query = (
            select(lead_import_rows)
            .where(lead_import_rows.c.import_id == import_id, lead_import_rows.c.row_number > after)
            .order_by(lead_import_rows.c.row_number)
            .limit(limit)
        )
        return list((await self.uow.execute(query)).all())

    async def progress(self, import_id: uuid.UUID, **values: Any) -> None:
        await self.uow.execute(update(lead_imports).where(lead_imports.c.id == import_id).values(**values))

    async def reject(self, import_id: uuid.UUID, row_number: int, error: str) -> None:
        await self.uow.execute(
            lead_import_errors.insert().values(import_id=import_id, row_number=row_number, error=error)
        )

    async def reject_many(self, import_id: uuid.UUID, errors: list[tuple[int, str]]) -> None:
        if errors:
            await self.uow.execute(
                lead_import_errors.insert(),
                [{"import_id": import_id, "row_number": n, "error": error} for n, error in errors],
            )

    async def forget_rows(self, import_id: uuid.UUID, after: int, up_to: int) -> None:
        """Delete the rows of a chunk (a range: the rows deleted before are not scanned again)."""
        r = lead_import_rows.c
        await self.uow.execute(
            lead_import_rows.delete().where(r.import_id == import_id, r.row_number > after, r.row_number <= up_to)
        )

    async def errors(self, import_id: uuid.UUID) -> list[Any]:
        query = (
            select(lead_import_errors)
            .where(lead_import_errors.c.import_id == import_id)
            .order_by(lead_import_errors.c.row_number)
        )
        return list((await self.uow.execute(query)).all())


_CLAIM_COLUMNS = {
    "kind": Text,
    "value": Text,
    "owner_id": Text,
    "lead_id": UUID(as_uuid=True),
    "account_id": UUID(as_uuid=True),
    "created_at": utc_timestamp("created_at").type,
}


@functools.cache
def _claim_from_arrays() -> Any:
    """``INSERT … SELECT FROM unnest(<one array per column>) ON CONFLICT DO NOTHING RETURNING kind, value``:
    one statement and six parameters however many keys (a VALUES list would bind six per key)."""
    arrays = (bindparam(name, type_=ARRAY(type_)) for name, type_ in _CLAIM_COLUMNS.items())
    given = func.unnest(*arrays).table_valued(*_CLAIM_COLUMNS).render_derived()
    return (
        pg_insert(customer_keys)
        .from_select(list(_CLAIM_COLUMNS), select(*(given.c[name] for name in _CLAIM_COLUMNS)))
        .on_conflict_do_nothing()
        .returning(customer_keys.c.kind, customer_keys.c.value)
    )
