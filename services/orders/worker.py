"""The orders worker: its consumers and outbox relay."""

from services.orders.config import get_settings
from services.orders.consumers import SUBSCRIPTIONS
from services.orders.db import platform_tables
from shared.service import worker_main

if __name__ == "__main__":
    worker_main(get_settings(), platform_tables, subscriptions=SUBSCRIPTIONS)
