"""leads, customer keys, ownership conflicts

Revision ID: ba3693598239
Revises: cdb78ebc3f3d
Create Date: 2026-11-25 04:35:43.967431
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ba3693598239"
down_revision: str | None = "cdb78ebc3f3d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_keys",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("account_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", name="pk_customer_keys"),
        schema="leads",
    )
    op.create_index("ix_customer_keys_account_id", "customer_keys", ["account_id"], unique=False, schema="leads")
    op.create_index("ix_customer_keys_lead_id", "customer_keys", ["lead_id"], unique=False, schema="leads")
    op.create_table(
        "leads",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("contact_name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("uscc", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("industry", sa.Text(), nullable=True),
        sa.Column("campaign", sa.Text(), nullable=True),
        sa.Column("utm_source", sa.Text(), nullable=True),
        sa.Column("utm_medium", sa.Text(), nullable=True),
        sa.Column("utm_campaign", sa.Text(), nullable=True),
        sa.Column("utm_term", sa.Text(), nullable=True),
        sa.Column("utm_content", sa.Text(), nullable=True),
        sa.Column("budget", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("decision_timeframe", sa.Text(), nullable=False),
        sa.Column("need_fit", sa.Text(), nullable=False),
        sa.Column("grade", sa.Text(), nullable=False),
        sa.Column("grading_rules_version", sa.Integer(), nullable=False),
        sa.Column("duplicate_of_lead_id", sa.UUID(), nullable=True),
        sa.Column("matched_account_id", sa.UUID(), nullable=True),
        sa.Column("ownership_conflict", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        schema="leads",
    )
    op.create_index(
        "ix_leads_campaign_created_at_id", "leads", ["campaign", "created_at", "id"], unique=False, schema="leads"
    )
    op.create_index("ix_leads_created_at_id", "leads", ["created_at", "id"], unique=False, schema="leads")
    op.create_index(
        "ix_leads_duplicate_of_lead_id_created_at_id",
        "leads",
        ["duplicate_of_lead_id", "created_at", "id"],
        unique=False,
        schema="leads",
    )
    op.create_index(
        "ix_leads_grade_created_at_id", "leads", ["grade", "created_at", "id"], unique=False, schema="leads"
    )
    op.create_index(
        "ix_leads_owner_id_created_at_id", "leads", ["owner_id", "created_at", "id"], unique=False, schema="leads"
    )
    op.create_index(
        "ix_leads_region_created_at_id", "leads", ["region", "created_at", "id"], unique=False, schema="leads"
    )
    op.create_index(
        "ix_leads_registered_by_created_at_id",
        "leads",
        ["registered_by", "created_at", "id"],
        unique=False,
        schema="leads",
    )
    op.create_index(
        "ix_leads_source_created_at_id", "leads", ["source", "created_at", "id"], unique=False, schema="leads"
    )
    op.create_table(
        "ownership_conflicts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("claimant_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ownership_conflicts")),
        schema="leads",
    )
    op.create_index(
        "ix_ownership_conflicts_created_at_id",
        "ownership_conflicts",
        ["created_at", "id"],
        unique=False,
        schema="leads",
    )
    op.create_index("ix_ownership_conflicts_lead_id", "ownership_conflicts", ["lead_id"], unique=False, schema="leads")
    _backfill_account_keys()


def _backfill_account_keys() -> None:
    """Accounts created before this revision: their company name becomes a customer key."""
    from services.leads.domain.matching import InvalidIdentifier, normalize_company_name

    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, name, owner_id, created_at FROM leads.accounts ORDER BY created_at, id")
    ).all()
    keys = []
    for row in rows:
        try:
            value = normalize_company_name(row.name)
        except InvalidIdentifier:
            continue
        keys.append({"value": value, "owner_id": row.owner_id, "account_id": row.id, "created_at": row.created_at})
    if keys:
        bind.execute(
            sa.text(
                "INSERT INTO leads.customer_keys (kind, value, owner_id, account_id, created_at)"
                " VALUES ('name', :value, :owner_id, :account_id, :created_at) ON CONFLICT DO NOTHING"
            ),
            keys,
        )


def downgrade() -> None:
    op.drop_index("ix_ownership_conflicts_lead_id", table_name="ownership_conflicts", schema="leads")
    op.drop_index("ix_ownership_conflicts_created_at_id", table_name="ownership_conflicts", schema="leads")
    op.drop_table("ownership_conflicts", schema="leads")
    op.drop_index("ix_leads_source_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_registered_by_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_region_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_owner_id_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_grade_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_duplicate_of_lead_id_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_created_at_id", table_name="leads", schema="leads")
    op.drop_index("ix_leads_campaign_created_at_id", table_name="leads", schema="leads")
    op.drop_table("leads", schema="leads")
    op.drop_index("ix_customer_keys_lead_id", table_name="customer_keys", schema="leads")
    op.drop_index("ix_customer_keys_account_id", table_name="customer_keys", schema="leads")
    op.drop_table("customer_keys", schema="leads")
