"""The service desk worker: its consumers, outbox relay and timers."""

from services.service_desk.config import get_settings
from services.service_desk.consumers import SUBSCRIPTIONS, TIMERS
from services.service_desk.db import platform_tables
from shared.service import worker_main

if __name__ == "__main__":
    worker_main(get_settings(), platform_tables, subscriptions=SUBSCRIPTIONS, timers=TIMERS)
