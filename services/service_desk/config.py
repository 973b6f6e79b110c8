from functools import lru_cache

from shared.config import ServiceSettings


class ServiceDeskSettings(ServiceSettings):
    service_name: str = "service_desk"
    # A survey nobody answered gets one reminder this long after it was sent.
    survey_reminder_after_seconds: float = 3 * 24 * 3600


@lru_cache
def get_settings() -> ServiceDeskSettings:
    return ServiceDeskSettings()
