from functools import lru_cache

from shared.config import ServiceSettings


class ServiceDeskSettings(ServiceSettings):
    service_name: str = "service_desk"
    # A survey nobody answered gets one reminder this long after it was sent.
    survey_reminder_after_seconds: float = 3 * 24 * 3600
    # How long a customer's survey link stays answerable.
    survey_link_ttl_seconds: float = 30 * 24 * 3600
    # Where customers reach this service (the gateway in production): links in survey.sent.
    public_base_url: str = "http://127.0.0.1:8004"
    # A resolved ticket the customer neither confirms nor disputes closes after this long.
    ticket_auto_close_after_seconds: float = 7 * 24 * 3600
    # Which group (skill) a new ticket goes to when the request names none.
    ticket_type_groups: dict[str, str] = {
        "inquiry": "general",
        "complaint": "complaints",
        "repair": "repair",
        "warranty_claim": "repair",
    }


@lru_cache
def get_settings() -> ServiceDeskSettings:
    return ServiceDeskSettings()
