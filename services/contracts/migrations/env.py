"""Alembic environment of the contracts service (schema `contracts`, role `salesline_contracts`)."""

from services.contracts.config import get_settings
from services.contracts.db import metadata
from shared.alembic_env import run_migrations

run_migrations(metadata, get_settings())
