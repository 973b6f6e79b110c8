"""The leads worker: its consumers, outbox relay and durable timers."""

from services.leads.config import get_settings
from services.leads.consumers import SUBSCRIPTIONS, TIMERS
from services.leads.db import platform_tables
from shared.service import worker_main

if __name__ == "__main__":
    worker_main(get_settings(), platform_tables, subscriptions=SUBSCRIPTIONS, timers=TIMERS)
