from functools import lru_cache

from shared.config import ServiceSettings


class WebhooksSettings(ServiceSettings):
    service_name: str = "webhooks"


@lru_cache
def get_settings() -> WebhooksSettings:
    return WebhooksSettings()
