"""outbox: wake the relays after commit instead of a NOTIFY trigger in every transaction

PostgreSQL serialises the commits of transactions that issued NOTIFY (see shared/wakeup.py).

Revision ID: b42bff871c0d
Revises: e2633e3f730c
Create Date: 2026-11-25 05:22:43.738091+00:00
"""

from collections.abc import Sequence

from shared.alembic_env import create_outbox_notify_trigger, drop_outbox_notify_trigger

revision: str = "b42bff871c0d"
down_revision: str | None = "e2633e3f730c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_notify_trigger("webhooks")


def downgrade() -> None:
    create_outbox_notify_trigger("webhooks")
