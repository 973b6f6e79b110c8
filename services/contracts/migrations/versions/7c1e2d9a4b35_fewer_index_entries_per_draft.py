"""fewer index entries per draft: opportunity_id unique only where set; history keyed by (contract_id, id)

A hand-drafted contract has no opportunity: the full unique index stored a NULL entry for each.
The history's primary key becomes the index its reads use (a contract's entries in order), so
each entry is written to one index instead of two.

Revision ID: 7c1e2d9a4b35
Revises: 358ba93b017d
Create Date: 2026-11-25 12:05:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c1e2d9a4b35"
down_revision: str | None = "358ba93b017d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_contracts_opportunity_id", "contracts", schema="contracts", type_="unique")
    op.create_index(
        "uq_contracts_opportunity_id",
        "contracts",
        ["opportunity_id"],
        unique=True,
        schema="contracts",
        postgresql_where="opportunity_id IS NOT NULL",
    )
    op.drop_constraint("pk_contract_history", "contract_history", schema="contracts", type_="primary")
    op.create_primary_key("pk_contract_history", "contract_history", ["contract_id", "id"], schema="contracts")
    op.drop_index("ix_contract_history_contract_id_id", "contract_history", schema="contracts")


def downgrade() -> None:
    op.create_index("ix_contract_history_contract_id_id", "contract_history", ["contract_id", "id"], schema="contracts")
    op.drop_constraint("pk_contract_history", "contract_history", schema="contracts", type_="primary")
    op.create_primary_key("pk_contract_history", "contract_history", ["id"], schema="contracts")
    op.drop_index("uq_contracts_opportunity_id", "contracts", schema="contracts")
    op.create_unique_constraint("uq_contracts_opportunity_id", "contracts", ["opportunity_id"], schema="contracts")
