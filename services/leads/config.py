from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator

from services.leads.domain import AssignmentPolicy, GradingRules
from services.leads.domain.behaviour import DEFAULT_POINTS, BehaviourModel, InteractionType
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
    # An assigned lead with no logged contact this long after assignment returns to the pool.
    first_contact_hours: float = Field(default=24.0, gt=0)
    # A new account with no logged contact this long after creation: its manager is told.
    account_contact_days: float = Field(default=7.0, gt=0)
    # How many leads one rep may claim from the pool per calendar day (in ``business_timezone``).
    pool_claims_per_day: int = Field(default=20, ge=0)
    # Also where target periods (months, quarters, years) begin at midnight.
    business_timezone: str = "Asia/Shanghai"
    # The behaviour score: points per interaction type, halving every half-life.
    behaviour_points: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_POINTS))
    behaviour_half_life_days: float = Field(default=14.0, gt=0)

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows")
        return value

    @field_validator("behaviour_points")
    @classmethod
    def _known_interactions(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - {t.value for t in InteractionType}
        if unknown or any(points < 0 for points in value.values()):
            raise ValueError(f"behaviour points: unknown types {sorted(unknown)} or negative points")
        return value

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)  # refuse to start with a zone the tz database does not know
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a time zone") from exc
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


def assignment_policy(settings: LeadsSettings) -> AssignmentPolicy:
    return AssignmentPolicy(
        first_contact=timedelta(hours=settings.first_contact_hours),
        account_contact=timedelta(days=settings.account_contact_days),
        claims_per_day=settings.pool_claims_per_day,
        timezone=settings.business_timezone,
    )


def behaviour_model(settings: LeadsSettings) -> BehaviourModel:
    return BehaviourModel(points=settings.behaviour_points, half_life=timedelta(days=settings.behaviour_half_life_days))
