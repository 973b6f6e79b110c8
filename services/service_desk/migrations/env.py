"""Alembic environment of the service_desk service (schema `service_desk`, role `salesline_service_desk`)."""

from services.service_desk.config import get_settings
from services.service_desk.db import metadata
from shared.alembic_env import run_migrations

run_migrations(metadata, get_settings())
