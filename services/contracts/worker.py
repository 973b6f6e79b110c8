"""The contracts worker: its consumers and outbox relay."""

from services.contracts.config import get_settings
from services.contracts.consumers import SUBSCRIPTIONS
from services.contracts.db import platform_tables
from shared.service import worker_main

if __name__ == "__main__":
    worker_main(get_settings(), platform_tables, subscriptions=SUBSCRIPTIONS)
