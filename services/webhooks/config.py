"""Settings of the webhooks service (environment ``SALESLINE_WEBHOOKS_<FIELD>`` or ``SALESLINE_<FIELD>``).

The ones an operator is most likely to set:

- ``SALESLINE_WEBHOOKS_ALLOWED_NETWORKS='["10.20.0.0/16"]'``: private, loopback or link-local
  networks that receivers may nevertheless live on (on-premises ERPs; the tests allow-list
  127.0.0.0/8). Everything else that is not a public address is refused at registration and
  again at every connect.
- ``SALESLINE_WEBHOOKS_ALLOW_HTTP=true``: accept ``http://`` URLs outside ``development``.
- ``SALESLINE_WEBHOOKS_SECRET_KEYS='["<Fernet key>", ...]'``: the keys that encrypt signing
  secrets at rest; the first encrypts, all decrypt (rotate by prepending a new key). The
  development key is refused outside development and test.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.config import ServiceSettings

# Development only (refused in staging/production): a fixed Fernet key so local data survives restarts.
DEV_SECRET_KEY = "c2FsZXNsaW5lLWRldi13ZWJob29rLWtleS0wMDAwMDA="

# Standard Webhooks / Svix schedule: the delay before attempt 1, 2, ... (10 attempts, ~3 days).
DEFAULT_RETRY_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


class WebhooksSettings(ServiceSettings):
    # A refused configuration must not print the keys and passwords it was given.
    model_config = SettingsConfigDict(**ServiceSettings.model_config, hide_input_in_errors=True)

    service_name: str = "webhooks"

    # -- where receivers may be -----------------------------------------------------------
    allowed_networks: list[str] = Field(default_factory=list)
    allow_http: bool = False

    # -- signing secrets --------------------------------------------------------------------
    secret_keys: list[str] = Field(default_factory=lambda: [DEV_SECRET_KEY])

    # -- delivery ---------------------------------------------------------------------------
    delivery_timeout_seconds: float = 15.0
    retry_schedule_seconds: list[float] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    # Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    retry_jitter: float = 0.1
    # A Retry-After longer than this is capped (a receiver cannot park a delivery for a year).
    max_retry_after_seconds: float = 86400.0
    # An endpoint whose every delivery failed for this long is disabled.
    disable_after_failing_seconds: float = 5 * 86400.0
    # Deliveries in flight per worker, and per subscription (a dead endpoint holds at most this many).
    dispatcher_concurrency: int = 256
    per_subscription_concurrency: int = 8
    # A claimed delivery is reclaimable after this long (a worker that died mid-delivery).
    # At least the delivery timeout plus a margin.
    delivery_lease_seconds: float = 45.0
    dispatcher_poll_seconds: float = 1.0
    # Attempts recorded per transaction at most (the recorder takes whatever is waiting).
    record_batch_size: int = 500
    # Circuit breaker per endpoint: open after this many consecutive failed attempts, for
    # circuit_open_seconds, doubling after each failed probe up to circuit_max_open_seconds.
    circuit_failure_threshold: int = Field(5, ge=1)
    circuit_open_seconds: float = Field(30.0, gt=0)
    circuit_max_open_seconds: float = Field(600.0, gt=0)
    response_excerpt_bytes: int = 2048

    # -- retention --------------------------------------------------------------------------
    event_retention_days: float = 90.0
    delivery_retention_days: float = 90.0
    purge_interval_seconds: float = 3600.0

    @property
    def allowed_ip_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)

    @property
    def http_allowed(self) -> bool:
        return self.allow_http or self.environment == "development"

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("secret_keys")
    @classmethod
    def _keys_present(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("SALESLINE_WEBHOOKS_SECRET_KEYS needs at least one key")
        return value

    @field_validator("retry_schedule_seconds")
    @classmethod
    def _schedule_sane(cls, value: list[float]) -> list[float]:
        if not value or any(d < 0 for d in value):
            raise ValueError("the retry schedule needs at least one non-negative delay")
        return value

    @model_validator(mode="after")
    def _lease_outlives_timeout(self) -> WebhooksSettings:
        if self.delivery_lease_seconds <= self.delivery_timeout_seconds:
            raise ValueError("delivery_lease_seconds must be longer than delivery_timeout_seconds")
        if self.environment not in ("development", "test") and DEV_SECRET_KEY in self.secret_keys:
            raise ValueError("SALESLINE_WEBHOOKS_SECRET_KEYS holds the development key; set a real Fernet key")
        return self


@lru_cache
def get_settings() -> WebhooksSettings:
    return WebhooksSettings()
