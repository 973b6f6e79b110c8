from functools import lru_cache

from shared.config import ServiceSettings


class ContractsSettings(ServiceSettings):
    service_name: str = "contracts"


@lru_cache
def get_settings() -> ContractsSettings:
    return ContractsSettings()
