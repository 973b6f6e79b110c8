"""outbox: wake the relays after commit instead of a NOTIFY trigger in every transaction

PostgreSQL serialises the commits of transactions that issued NOTIFY (see shared/wakeup.py).

Revision ID: fb5ba362c694
Revises: 108603d9970c
Create Date: 2026-11-25 05:22:43.738040+00:00
"""

from collections.abc import Sequence

from shared.alembic_env import create_outbox_notify_trigger, drop_outbox_notify_trigger

revision: str = "fb5ba362c694"
down_revision: str | None = "108603d9970c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_notify_trigger("service_desk")


def downgrade() -> None:
    create_outbox_notify_trigger("service_desk")
