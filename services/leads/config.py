from functools import lru_cache

from shared.config import ServiceSettings


class LeadsSettings(ServiceSettings):
    service_name: str = "leads"


@lru_cache
def get_settings() -> LeadsSettings:
    return LeadsSettings()
