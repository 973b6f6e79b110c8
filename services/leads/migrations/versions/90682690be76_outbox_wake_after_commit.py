"""outbox: wake the relays after commit instead of a NOTIFY trigger in every transaction

PostgreSQL serialises the commits of transactions that issued NOTIFY (see shared/wakeup.py).

Revision ID: 90682690be76
Revises: 1b3bb175912f
Create Date: 2026-11-25 05:22:43.737782+00:00
"""

from collections.abc import Sequence

from shared.alembic_env import create_outbox_notify_trigger, drop_outbox_notify_trigger

revision: str = "90682690be76"
down_revision: str | None = "1b3bb175912f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_notify_trigger("leads")


def downgrade() -> None:
    create_outbox_notify_trigger("leads")
