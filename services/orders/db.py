"""The orders schema: tables and repositories (SQLAlchemy Core).

An order's approval steps, shipments, payments and invoices live in JSONB on its row: they
are parts of the order aggregate, always loaded and saved with it under one version check.
Columns that queries filter on (``pending_role`` for approval queues, ``credit_hold``,
``status``, ``customer_id``) are kept beside them, with indexes.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Index,
    Integer,
    Numeric,
    Sequence,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.orders.domain import Amendment, ApprovalStep, Order, OrderLine, OrderStatus
from services.orders.domain.values import CREDIT_EXPOSED, Invoice, Payment, Shipment
from shared.db import service_metadata, utc_timestamp
from shared.events import ContactInfo
from shared.numbers import next_document_number
from shared.pagination import PageParams, fetch_page
from shared.repository import Repository, json_codec

metadata, platform_tables = service_metadata("orders")

order_number_seq = Sequence("order_number_seq", metadata=metadata)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    # One order per contract: the last line of defence behind the inbox and the state guard.
    Column("contract_id", UUID(as_uuid=True), unique=True),
    Column("customer_id", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("contact", JSONB),
    Column("owner_id", Text, nullable=False),
    Column("owner_role", Text, nullable=False, server_default="sales_rep"),
    Column("region", Text),
    Column("currency", String(3), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("total_amount", Numeric(18, 2), nullable=False),
    Column("paid_amount", Numeric(18, 2), nullable=False, server_default="0"),
    Column("payment_terms", Text, nullable=False),
    Column("payment_method", Text),
    Column("delivery_address", Text),
    Column("requested_delivery_date", Text),
    Column("promised_delivery_date", Text),
    Column("approval_round", Integer, nullable=False, server_default="0"),
    Column("approvals", JSONB, nullable=False, server_default="[]"),
    # The role whose approval queue the order is in; NULL when nobody has to decide.
    Column("pending_role", Text),
    Column("credit_hold", Boolean, nullable=False, server_default="false"),
    Column("pending_change", JSONB),
    Column("shipments", JSONB, nullable=False, server_default="[]"),
    Column("payments", JSONB, nullable=False, server_default="[]"),
    Column("invoices", JSONB, nullable=False, server_default="[]"),
    Column("cancelled_reason", Text),
    utc_timestamp("created_at", nullable=False),
    utc_timestamp("approved_at"),
    utc_timestamp("delivered_at"),
    utc_timestamp("closed_at"),
    Index("ix_orders_created_at_id", "created_at", "id"),
    Index("ix_orders_owner_id_created_at_id", "owner_id", "created_at", "id"),
    # GET /v1/orders?customer_id=… and ?status=… in the list order; the credit check by customer.
    Index("ix_orders_customer_id_created_at_id", "customer_id", "created_at", "id"),
    Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
    Index(
        "ix_orders_pending_role_created_at_id",
        "pending_role",
        "created_at",
        "id",
        postgresql_where="pending_role IS NOT NULL",
    ),
    Index("ix_orders_customer_id_credit_hold", "customer_id", postgresql_where="credit_hold"),
    # Reports: the credit hold list, deliveries by period, open receivables.
    Index("ix_orders_credit_hold_created_at_id", "created_at", "id", postgresql_where="credit_hold"),
    Index("ix_orders_delivered_at", "delivered_at", postgresql_where="delivered_at IS NOT NULL"),
    Index("ix_orders_receivable_customer_id", "customer_id", postgresql_where="paid_amount < total_amount"),
)

# Credit limits per customer, kept current by the ERP (or finance through the API).
credit_limits = Table(
    "credit_limits",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("credit_limit", Numeric(18, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_by", Text, nullable=False),
    utc_timestamp("updated_at", nullable=False),
)

# ERP callbacks already applied, by Standard Webhooks ``webhook-id``: a replay has its effect once.
erp_webhooks = Table(
    "erp_webhooks",
    metadata,
    Column("webhook_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    utc_timestamp("received_at", nullable=False, server_default=func.now()),
    Index("ix_erp_webhooks_received_at", "received_at"),
)

# Contracts known to be terminated, so a contract.signed arriving after its termination (events
# may be reordered) enters no order.
terminated_contracts = Table(
    "terminated_contracts",
    metadata,
    Column("contract_id", UUID(as_uuid=True), primary_key=True),
    Column("contract_number", Text, nullable=False),
    utc_timestamp("terminated_at", nullable=False),
)


async def _xact_lock(uow, name: str) -> None:
    """A transaction-scoped advisory lock on ``name`` (released at commit or rollback)."""
    await uow.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(literal(name), 0))))


class TerminatedContracts:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def lock_contract(self, contract_id: uuid.UUID) -> None:
        """Serialises a contract's signing and termination, so neither misses the other's effect."""
        await _xact_lock(self.uow, f"orders.contract:{contract_id}")

    async def record(self, contract_id: uuid.UUID, contract_number: str, terminated_at: datetime) -> None:
        values = {"contract_id": contract_id, "contract_number": contract_number, "terminated_at": terminated_at}
        await self.uow.execute(pg_insert(terminated_contracts).values(**values).on_conflict_do_nothing())

    async def signing_done_or_void(self, contract_id: uuid.UUID) -> bool:
        """Whether the contract already has its order, or was terminated (one round trip for both)."""
        has_order = exists().where(orders.c.contract_id == contract_id)
        ended = exists().where(terminated_contracts.c.contract_id == contract_id)
        return bool((await self.uow.execute(select(or_(has_order, ended)))).scalar())


LINES = json_codec(list[OrderLine])
CONTACT = json_codec(ContactInfo | None)
APPROVALS = json_codec(list[ApprovalStep])
CHANGE = json_codec(Amendment | None)
SHIPMENTS = json_codec(list[Shipment])
PAYMENTS = json_codec(list[Payment])
INVOICES = json_codec(list[Invoice])

_FIELDS = (
    "id",
    "number",
    "version",
    "contract_id",
    "customer_id",
    "customer_name",
    "owner_id",
    "owner_role",
    "region",
    "currency",
    "total_amount",
    "paid_amount",
    "payment_terms",
    "payment_method",
    "delivery_address",
    "requested_delivery_date",
    "promised_delivery_date",
    "approval_round",
    "cancelled_reason",
    "created_at",
    "approved_at",
    "delivered_at",
    "closed_at",
)


class OrderRepository(Repository[Order]):
    table = orders
    noun = "order"

    async def next_number(self, now: datetime) -> str:
        return await next_document_number(self.uow, order_number_seq, "SO", now)

    async def get_by_number(self, number: str) -> Order | None:
        """For ERP callbacks, which know the order number; locked for the change."""
        return await self._locked_one(orders.c.number == number)

    async def for_contract(self, contract_id: uuid.UUID) -> Order | None:
        """The contract's order (one at most), locked for the change."""
        return await self._locked_one(orders.c.contract_id == contract_id)

    async def _locked_one(self, where: ColumnElement[bool]) -> Order | None:
        row = (await self.uow.execute(select(orders).where(where).with_for_update())).first()
        if row is None:
            return None
        order = self.from_row(row)
        self._loaded_versions[order.aggregate_id] = order.version
        return order

    async def held_for_customer(self, customer_id: str) -> list[Order]:
        query = select(orders).where(orders.c.customer_id == customer_id, orders.c.credit_hold).with_for_update()
        found = [self.from_row(row) for row in await self.uow.execute(query)]
        for order in found:
            self._loaded_versions[order.aggregate_id] = order.version
        return found

    async def outstanding_balance(
        self, customer_id: str, currency: str, *, excluding: uuid.UUID | None = None
    ) -> Decimal:
        """What the customer owes in ``currency`` on its (other) approved, not yet closed orders.

        An overpaid order owes nothing; its surplus does not make room on the customer's others."""
        owed = func.greatest(orders.c.total_amount - orders.c.paid_amount, 0)
        query = select(func.coalesce(func.sum(owed), 0)).where(
            orders.c.customer_id == customer_id,
            orders.c.currency == currency,
            orders.c.status.in_([s.value for s in CREDIT_EXPOSED]),
        )
        if excluding is not None:
            query = query.where(orders.c.id != excluding)
        return Decimal(await self.uow.scalar(query))

    async def lock_customer_credit(self, customer_id: str) -> None:
        """A transaction-scoped lock on the customer's credit (released at commit or rollback)."""
        await _xact_lock(self.uow, "orders.credit:" + customer_id)

    async def held_count(self, customer_id: str) -> int:
        query = select(func.count()).where(orders.c.customer_id == customer_id, orders.c.credit_hold)
        return int(await self.uow.scalar(query))

    async def credit_holds(self, page: PageParams) -> tuple[list[Order], str | None]:
        query = select(orders).where(orders.c.credit_hold)
        rows, next_cursor = await fetch_page(self.uow, query, (orders.c.created_at, orders.c.id), page)
        return [self.from_row(row) for row in rows], next_cursor

    async def approval_queue(
        self, roles: frozenset[str], page: PageParams, *, region: str | None = None
    ) -> tuple[list[Order], str | None]:
        condition = orders.c.pending_role.is_not(None) if "admin" in roles else orders.c.pending_role.in_(roles)
        query = select(orders).where(condition)
        if region is not None:
            # A regional director decides for their own region.
            query = query.where(
                (orders.c.pending_role != "regional_director")
                | and_(orders.c.region == region, orders.c.pending_role == "regional_director")
            )
        rows, next_cursor = await fetch_page(self.uow, query, (orders.c.created_at, orders.c.id), page)
        return [self.from_row(row) for row in rows], next_cursor

    def to_row(self, order: Order) -> dict[str, Any]:
        row = {name: getattr(order, name) for name in _FIELDS}
        row.update(
            status=order.status.value,
            contact=CONTACT.dump_python(order.contact, mode="json"),
            lines=LINES.dump_python(order.lines, mode="json"),
            approvals=APPROVALS.dump_python(order.approvals, mode="json"),
            pending_role=order.pending_role,
            credit_hold=order.credit_hold,
            pending_change=CHANGE.dump_python(order.pending_change, mode="json"),
            shipments=SHIPMENTS.dump_python(order.shipments, mode="json"),
            payments=PAYMENTS.dump_python(order.payments, mode="json"),
            invoices=INVOICES.dump_python(order.invoices, mode="json"),
        )
        return row

    def from_row(self, row: Any) -> Order:
        return Order(
            **{name: getattr(row, name) for name in _FIELDS},
            status=OrderStatus(row.status),
            contact=CONTACT.validate_python(row.contact),
            lines=LINES.validate_python(row.lines),
            approvals=APPROVALS.validate_python(row.approvals),
            pending_change=CHANGE.validate_python(row.pending_change),
            shipments=SHIPMENTS.validate_python(row.shipments),
            payments=PAYMENTS.validate_python(row.payments),
            invoices=INVOICES.validate_python(row.invoices),
        )


class CreditLimits:
    def __init__(self, uow) -> None:
        self.uow = uow

    async def get(self, customer_id: str) -> Any | None:
        return (await self.uow.execute(select(credit_limits).where(credit_limits.c.customer_id == customer_id))).first()

    async def set(self, customer_id: str, limit: Decimal, currency: str, *, by: str, now: datetime) -> None:
        values = {"credit_limit": limit, "currency": currency, "updated_by": by, "updated_at": now}
        statement = pg_insert(credit_limits).values(customer_id=customer_id, **values)
        await self.uow.execute(statement.on_conflict_do_update(index_elements=["customer_id"], set_=values))


# Standard Webhooks senders retry a message under the same id (re-signed) for days: remember
# ids longer than any retry schedule.
WEBHOOK_ID_RETENTION = timedelta(days=7)
_PURGE_BATCH = 100


async def claim_webhook(uow, webhook_id: str, kind: str) -> bool:
    """Record an ERP ``webhook-id`` in the callback's transaction; False when it was applied before.

    Each claim also forgets up to a hundred ids past their retention, so the table stays bounded
    without a separate job.
    """
    expired = (
        select(erp_webhooks.c.webhook_id)
        .where(erp_webhooks.c.received_at < func.now() - WEBHOOK_ID_RETENTION)
        .limit(_PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await uow.execute(delete(erp_webhooks).where(erp_webhooks.c.webhook_id.in_(expired.scalar_subquery())))
    statement = (
        pg_insert(erp_webhooks)
        .values(webhook_id=webhook_id, kind=kind)
        .on_conflict_do_nothing(index_elements=["webhook_id"])
        .returning(erp_webhooks.c.webhook_id)
    )
    return (await uow.execute(statement)).first() is not None


# -- reports ---------------------------------------------------------------------------------

_CYCLE_TIMES = text(
    """
    SELECT step->>'level' AS level,
           count(*) AS decisions,
           avg(extract(epoch FROM (step->>'decided_at')::timestamptz - (step->>'entered_at')::timestamptz)) AS avg_s,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
               (step->>'decided_at')::timestamptz - (step->>'entered_at')::timestamptz)) AS p50_s,
           max(extract(epoch FROM (step->>'decided_at')::timestamptz - (step->>'entered_at')::timestamptz)) AS max_s
      FROM orders.orders o, jsonb_array_elements(o.approvals) AS step
     WHERE o.created_at >= :since AND o.created_at < :until
       AND step->>'status' IN ('approved', 'rejected')
       AND step->>'entered_at' IS NOT NULL AND step->>'decided_at' IS NOT NULL
     GROUP BY 1 ORDER BY 1
    """
)

_ON_TIME = text(
    """
    SELECT count(*) AS delivered,
           count(*) FILTER (WHERE requested_delivery_date IS NOT NULL) AS with_promise,
           count(*) FILTER (WHERE requested_delivery_date IS NOT NULL
                              AND (delivered_at AT TIME ZONE :tz)::date <= requested_delivery_date::date) AS on_time
      FROM orders.orders
     WHERE delivered_at >= :since AND delivered_at < :until
    """
)

# Per order, its invoices in due order (no due date: due on issue); payments settle the earliest
# first, so an invoice's open amount is what the cumulative invoiced amount exceeds the paid amount
# by, capped at the invoice. Summed per customer and currency with the days past due.
_RECEIVABLES_BY_ORDER = """
    SELECT o.customer_id, o.currency,
           o.total_amount - o.paid_amount AS outstanding,
           b.open AS invoiced_open,
           o.total_amount - greatest(b.invoiced, o.paid_amount) AS not_invoiced,
           b.not_due, b.d1_30, b.d31_60, b.d61_90, b.d90_plus
      FROM orders.orders o
      CROSS JOIN LATERAL (
            SELECT coalesce(sum(amount), 0) AS invoiced,
                   coalesce(sum(open), 0) AS open,
                   coalesce(sum(open) FILTER (WHERE overdue <= 0), 0) AS not_due,
                   coalesce(sum(open) FILTER (WHERE overdue BETWEEN 1 AND 30), 0) AS d1_30,
                   coalesce(sum(open) FILTER (WHERE overdue BETWEEN 31 AND 60), 0) AS d31_60,
                   coalesce(sum(open) FILTER (WHERE overdue BETWEEN 61 AND 90), 0) AS d61_90,
                   coalesce(sum(open) FILTER (WHERE overdue > 90), 0) AS d90_plus
              FROM (SELECT amount, CAST(:today AS date) - due AS overdue,
                           greatest(0, least(amount, sum(amount) OVER (ORDER BY due, number) - o.paid_amount)) AS open
                      FROM (SELECT inv.amount, inv.number,
                                   coalesce(inv.due_date, (inv.issued_at AT TIME ZONE CAST(:tz AS text))::date) AS due
                              FROM jsonb_to_recordset(o.invoices)
                                   AS inv(number text, amount numeric, issued_at timestamptz, due_date date)) AS i
                   ) AS aged
           ) AS b
     WHERE o.paid_amount < o.total_amount AND o.status = ANY(:statuses) {customer}
"""

_RECEIVABLE_COLUMNS = (
    "outstanding",
    "invoiced_open",
    "not_invoiced",
    "not_due",
    "d1_30",
    "d31_60",
    "d61_90",
    "d90_plus",
)


def _receivables(today: date, tz: str, customer_id: str | None) -> Any:
    by_order = _RECEIVABLES_BY_ORDER.format(customer="AND o.customer_id = :customer_id" if customer_id else "")
    sums = ", ".join(f"sum({name}) AS {name}" for name in _RECEIVABLE_COLUMNS)
    statement = text(f"SELECT customer_id, currency, {sums} FROM ({by_order}) AS r GROUP BY customer_id, currency")
    params: dict[str, Any] = {"today": today, "tz": tz, "statuses": [s.value for s in CREDIT_EXPOSED]}
    if customer_id:
        params["customer_id"] = customer_id
    columns = {"customer_id": Text, "currency": Text} | {name: Numeric(18, 2) for name in _RECEIVABLE_COLUMNS}
    return statement.bindparams(**params).columns(**columns).subquery("receivables")


class Reports:
    """Read-only aggregates for managers and finance (DESIGN: approval cycle, holds, delivery, receivables)."""

    def __init__(self, uow) -> None:
        self.uow = uow

    async def approval_cycle_times(self, since: datetime, until: datetime) -> list[Any]:
        return list(await self.uow.execute(_CYCLE_TIMES, {"since": since, "until": until}))

    async def on_time_delivery(self, since: datetime, until: datetime, tz: str) -> Any:
        return (await self.uow.execute(_ON_TIME, {"since": since, "until": until, "tz": tz})).one()

    async def receivables(
        self, today: date, tz: str, page: PageParams, *, customer_id: str | None = None
    ) -> tuple[list[Any], str | None]:
        """Per customer and currency, largest balance first: what approved orders still owe,
        invoiced (by days past the invoices' due dates) and not yet invoiced."""
        report = _receivables(today, tz, customer_id)
        key = (report.c.outstanding, report.c.customer_id, report.c.currency)
        return await fetch_page(self.uow, select(report), key, page, descending=True)
