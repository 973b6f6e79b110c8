"""Alembic environment of the webhooks service (schema `webhooks`, role `salesline_webhooks`)."""

from services.webhooks.config import get_settings
from services.webhooks.db import metadata
from shared.alembic_env import run_migrations

run_migrations(metadata, get_settings())
