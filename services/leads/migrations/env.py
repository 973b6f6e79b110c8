"""Alembic environment of the leads service (schema `leads`, role `salesline_leads`)."""

from services.leads.config import get_settings
from services.leads.db import metadata
from shared.alembic_env import run_migrations

run_migrations(metadata, get_settings())
