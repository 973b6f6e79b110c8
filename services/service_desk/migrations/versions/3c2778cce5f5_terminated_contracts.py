"""terminated contracts: they no longer count toward a customer's tier

Revision ID: 3c2778cce5f5
Revises: fb5ba362c694
Create Date: 2026-11-25 08:05:33.717694
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c2778cce5f5"
down_revision: str | None = "fb5ba362c694"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terminated_contracts",
        sa.Column("contract_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_terminated_contracts")),
        schema="service_desk",
    )


def downgrade() -> None:
    op.drop_table("terminated_contracts", schema="service_desk")
