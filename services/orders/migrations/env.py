"""Alembic environment of the orders service (schema `orders`, role `salesline_orders`)."""

from services.orders.config import get_settings
from services.orders.db import metadata
from shared.alembic_env import run_migrations

run_migrations(metadata, get_settings())
