from functools import lru_cache

from shared.config import ServiceSettings


class OrdersSettings(ServiceSettings):
    service_name: str = "orders"


@lru_cache
def get_settings() -> OrdersSettings:
    return OrdersSettings()
