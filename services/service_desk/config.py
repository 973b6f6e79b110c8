from datetime import date, time
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from services.service_desk.domain.calendar import BusinessCalendar
from shared.config import ServiceSettings


class ServiceDeskSettings(ServiceSettings):
    service_name: str = "service_desk"
    # A survey nobody answered gets one reminder this long after it was sent.
    survey_reminder_after_seconds: float = 3 * 24 * 3600
    # How long a customer's survey link stays answerable.
    survey_link_ttl_seconds: float = 30 * 24 * 3600
    # Where customers reach this service (the gateway in production): links in survey.sent.
    public_base_url: str = "http://127.0.0.1:8004"
    # How long a customer's repair acceptance link stays answerable.
    repair_acceptance_link_ttl_seconds: float = 14 * 24 * 3600
    # A resolved ticket the customer neither confirms nor disputes closes after this long.
    ticket_auto_close_after_seconds: float = 7 * 24 * 3600
    # Which group (skill) a new ticket goes to when the request names none.
    ticket_type_groups: dict[str, str] = {
        "inquiry": "general",
        "complaint": "complaints",
        "repair": "repair",
        "warranty_claim": "repair",
    }

    # SLA policy: business hours per priority (first response 1 h / 4 h / 24 h).
    sla_first_response_hours: dict[str, float] = {"P1": 1, "P2": 4, "P3": 24, "P4": 48}
    sla_resolution_hours: dict[str, float] = {"P1": 8, "P2": 24, "P3": 72, "P4": 120}
    # Optional per customer tier: overrides the priority's targets where a tier names one.
    sla_tier_first_response_hours: dict[str, dict[str, float]] = {"key": {"P1": 0.5, "P2": 2, "P3": 8, "P4": 24}}
    sla_tier_resolution_hours: dict[str, dict[str, float]] = {"key": {"P1": 4, "P2": 12, "P3": 48, "P4": 96}}
    # A customer's tier comes from its signed contracts (contract.signed): the highest tier whose
    # minimum the customer's signed total in ``customer_tier_currency`` reaches.
    customer_tier_minimums: dict[str, Decimal] = {"key": Decimal("1000000")}
    customer_tier_currency: str = "CNY"
    # A warning fires when this share of a target is used.
    sla_warning_fraction: float = 0.8
    # The business calendar SLAs are counted in.
    business_timezone: str = "Asia/Shanghai"
    business_opens: time = time(9, 0)
    business_closes: time | None = time(18, 0)  # null: until midnight
    business_weekdays: list[int] = [0, 1, 2, 3, 4]  # Monday = 0
    business_holidays_country: str | None = "CN"  # public holidays (and make-up workdays), `holidays` package
    company_days_off: list[date] = []
    company_extra_working_days: list[date] = []
    # Daily breaks not counted as business time, e.g. [["12:00", "13:30"]] for lunch.
    business_breaks: list[tuple[time, time]] = []

    def sla_targets(self, priority: str, tier: str | None = None) -> dict[str, float]:
        """Business seconds per clock: the tier's policy where it has one, else the priority's."""
        targets = {}
        for kind, by_priority, by_tier in (
            ("first_response", self.sla_first_response_hours, self.sla_tier_first_response_hours),
            ("resolution", self.sla_resolution_hours, self.sla_tier_resolution_hours),
        ):
            hours = by_tier.get(tier or "", {}).get(priority, by_priority[priority])
            targets[kind] = hours * 3600
        return targets

    def calendar(self) -> BusinessCalendar:
        return _calendar(
            self.business_timezone,
            self.business_opens,
            self.business_closes,
            tuple(self.business_weekdays),
            self.business_holidays_country,
            tuple(self.company_days_off),
            tuple(self.company_extra_working_days),
            tuple(self.business_breaks),
        )


@lru_cache(maxsize=8)
def _calendar(tz, opens, closes, weekdays, country, days_off, extra, breaks) -> BusinessCalendar:
    return BusinessCalendar(
        tz=ZoneInfo(tz),
        opens=opens,
        closes=closes,
        weekdays=frozenset(weekdays),
        country=country,
        days_off=frozenset(days_off),
        extra_working_days=frozenset(extra),
        breaks=breaks,
    )


@lru_cache
def get_settings() -> ServiceDeskSettings:
    return ServiceDeskSettings()
