"""The contracts worker: its outbox relay (it consumes `opportunity.won` from the contracts issue on)."""

from services.contracts.config import get_settings
from services.contracts.db import platform_tables
from shared.service import worker_main

if __name__ == "__main__":
    worker_main(get_settings(), platform_tables)
