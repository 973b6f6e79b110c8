"""The webhooks worker: its consumers and outbox relay."""

from services.webhooks.config import get_settings
from services.webhooks.consumers import SUBSCRIPTIONS
from services.webhooks.db import platform_tables
from shared.service import worker_main

if __name__ == "__main__":
    worker_main(get_settings(), platform_tables, subscriptions=SUBSCRIPTIONS)
