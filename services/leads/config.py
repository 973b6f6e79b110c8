from functools import lru_cache
from pathlib import Path

from pydantic import field_validator

from services.leads.domain import GradingRules
from services.leads.domain.quote import PriceRules
from shared.config import ServiceSettings

DEFAULT_GRADING_RULES = Path(__file__).resolve().parent / "grading_rules.json"
DEFAULT_PRICE_RULES = Path(__file__).resolve().parent / "price_rules.json"


class LeadsSettings(ServiceSettings):
    service_name: str = "leads"
    # Region assumed for phone numbers written without a country code (ISO 3166-1 alpha-2).
    phone_region: str = "CN"
    # The A/B/C grading rules (a versioned JSON file, see services/leads/domain/grading.py).
    grading_rules_path: Path = DEFAULT_GRADING_RULES
    # Tiered volume discounts for quotes (a versioned JSON file, see services/leads/domain/quote.py).
    price_rules_path: Path = DEFAULT_PRICE_RULES

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows")
        return value

    @field_validator("grading_rules_path")
    @classmethod
    def _valid_rules(cls, value: Path) -> Path:
        load_grading_rules(value)  # refuse to start with rules that do not parse
        return value

    @field_validator("price_rules_path")
    @classmethod
    def _valid_price_rules(cls, value: Path) -> Path:
        load_price_rules(value)  # refuse to start with rules that do not parse
        return value


@lru_cache
def load_price_rules(path: Path) -> PriceRules:
    return PriceRules.load(path)


@lru_cache
def load_grading_rules(path: Path) -> GradingRules:
    return GradingRules.load(path)


@lru_cache
def get_settings() -> LeadsSettings:
    return LeadsSettings()
