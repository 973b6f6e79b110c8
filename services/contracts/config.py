from functools import lru_cache

from shared.config import ServiceSettings


class ContractsSettings(ServiceSettings):
    service_name: str = "contracts"
    # Where signatories reach this service (the gateway in production): the signing links' URLs.
    public_base_url: str = "http://127.0.0.1:8002"


@lru_cache
def get_settings() -> ContractsSettings:
    return ContractsSettings()
