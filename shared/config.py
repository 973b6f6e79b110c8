"""Settings every service shares (pydantic-settings, environment prefix ``SALESLINE_``).

A service subclasses :class:`ServiceSettings` and sets ``service_name``; its database role
defaults to ``salesline_<service>``. Outside development the service refuses to start with
a development secret or password.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

DEV_JWT_SECRET = "salesline-development-secret-do-not-use-in-production"
DEV_DB_PASSWORD_PREFIX = "dev-password-"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESLINE_", extra="ignore")

    service_name: str = "shared"
    environment: Literal["development", "test", "production", "staging"] = "development"

    # PostgreSQL: one database, one schema and one role per service.
    db_host: str = "127.0.0.1"
    db_port: int = 55432
    db_name: str = "salesline"
    db_user: str | None = None
    db_password: str | None = None
    # Per process, opened as needed. A request holds a connection until its coroutine runs
    # again after the statement, behind the others the event loop is serving: with 16 requests
    # in flight per worker, 10 made requests queue for connections (benchmark 3's p99 70-76 ms
    # against 59-70 with 20).
    db_pool_size: int = 20
    db_admin_user: str = "postgres"
    db_admin_password: str | None = None

    # RabbitMQ: one durable topic exchange; the routing key is the event type.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:55672/"
    exchange: str = "salesline"
    # Prefixes every queue name, so parallel test runs never share queues.
    queue_prefix: str = ""
    consumer_prefetch: int = 256
    # A consumer commits every message already waiting (up to this many) in one transaction.
    consumer_batch_size: int = 128
    retry_delays_ms: list[int] = Field(default_factory=lambda: [10_000, 60_000, 600_000])
    delivery_limit: int = 5

    relay_batch_size: int = 500
    relay_lease_seconds: float = 30.0
    relay_poll_seconds: float = 1.0
    # Sent outbox rows are kept this long for ops inspection, then deleted.
    outbox_retention_hours: float = 24.0
    timer_poll_seconds: float = 1.0
    timer_batch_size: int = 50

    # Auth: HS256 with a development secret locally; OIDC (issuer, audience, JWKS) in production.
    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None

    # Workers sample their backlog gauges (outbox, timers, queue depths) this often.
    metrics_sample_seconds: float = 15.0

    log_level: str = "INFO"
    # The worker process serves its Prometheus metrics (relay, consumers, timers) here when set.
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"

    @property
    def schema(self) -> str:
        return self.service_name

    @property
    def source(self) -> str:
        return f"/salesline/{self.service_name}"

    @property
    def db_role(self) -> str:
        return self.db_user or f"salesline_{self.service_name}"

    @property
    def db_role_password(self) -> str:
        return self.db_password or f"{DEV_DB_PASSWORD_PREFIX}{self.service_name}"

    def database_url(self, *, admin: bool = False, driver: str = "postgresql+asyncpg") -> str:
        from sqlalchemy.engine import URL

        user, password = (
            (self.db_admin_user, self.db_admin_password) if admin else (self.db_role, self.db_role_password)
        )
        url = URL.create(driver, user, password, self.db_host, self.db_port, self.db_name)
        return url.render_as_string(hide_password=False)

    def queue_name(self, consumer: str) -> str:
        return f"{self.queue_prefix}{consumer}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``SALESLINE_<SERVICE>_<FIELD>`` beats ``SALESLINE_<FIELD>`` (e.g. each service's DB password)."""
        service = cls.model_fields["service_name"].default.upper()
        per_service = EnvSettingsSource(settings_cls, env_prefix=f"SALESLINE_{service}_")
        return init_settings, per_service, env_settings, dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> ServiceSettings:
        if self.environment in ("development", "test"):
            return self
        if self.jwt_secret == DEV_JWT_SECRET and not self.jwt_jwks_url:
            raise ValueError("SALESLINE_JWT_SECRET is the development default; set a real secret or OIDC")
        if self.db_password is None:
            raise ValueError("SALESLINE_DB_PASSWORD must be set outside development")
        return self
