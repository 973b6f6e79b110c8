"""terminated contracts: a contract.signed arriving after its termination enters no order

Revision ID: a8f2420ad880
Revises: e524cedcc49a
Create Date: 2026-11-25 08:02:32.709450
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8f2420ad880"
down_revision: str | None = "e524cedcc49a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terminated_contracts",
        sa.Column("contract_id", sa.UUID(), nullable=False),
        sa.Column("contract_number", sa.Text(), nullable=False),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_terminated_contracts")),
        schema="orders",
    )


def downgrade() -> None:
    op.drop_table("terminated_contracts", schema="orders")
