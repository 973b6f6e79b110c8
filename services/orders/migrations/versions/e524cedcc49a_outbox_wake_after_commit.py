"""outbox: wake the relays after commit instead of a NOTIFY trigger in every transaction

PostgreSQL serialises the commits of transactions that issued NOTIFY (see shared/wakeup.py).

Revision ID: e524cedcc49a
Revises: ffae57013c21
Create Date: 2026-11-25 05:22:43.737983+00:00
"""

from collections.abc import Sequence

from shared.alembic_env import create_outbox_notify_trigger, drop_outbox_notify_trigger

revision: str = "e524cedcc49a"
down_revision: str | None = "ffae57013c21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_notify_trigger("orders")


def downgrade() -> None:
    create_outbox_notify_trigger("orders")
