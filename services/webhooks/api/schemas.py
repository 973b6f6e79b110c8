"""Request and response bodies of the webhooks API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, computed_field

from shared.api import ApiModel, ApiResponse, Instant

Pattern = Annotated[str, Field(min_length=1, max_length=200, examples=["order.*", "contract.signed.v1"])]
Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://erp.example.com/salesline/webhooks"])]
Description = Annotated[str, Field(max_length=500)]
DeliveryStatus = Literal["pending", "paused", "succeeded", "failed"]


class EventRead(ApiResponse):
    id: uuid.UUID
    type: str
    source: str
    subject: str | None
    time: datetime
    envelope: dict[str, Any]


# -- subscriptions ---------------------------------------------------------------------------


class SubscriptionCreate(ApiModel):
    url: Url = Field(description="Where to POST: https:// (http:// only in development), no credentials in it")
    event_types: Annotated[list[Pattern], Field(min_length=1, max_length=50)] = Field(
        description="Exact types (`contract.signed.v1`), prefixes (`order.*`) or `*`"
    )
    description: Description | None = None
    active: bool = True


class SubscriptionUpdate(ApiModel):
    """Only the fields sent change; `description: null` clears the description."""

    url: Url | None = None
    event_types: Annotated[list[Pattern], Field(min_length=1, max_length=50)] | None = None
    description: Description | None = None
    active: bool | None = Field(None, description="`true` also re-enables a subscription the service disabled")


class SubscriptionRead(ApiResponse):
    id: uuid.UUID
    owner_id: str
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    failing_since: datetime | None = Field(description="First failure of the current run of failures")
    disabled_at: datetime | None
    disabled_reason: Literal["endpoint_gone", "failing"] | None = Field(
        description="Why the service disabled it: the endpoint answered 410, or failed for 5 days"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until then every request carries a second signature made with the previous secret"
    )
    consecutive_failures: int = Field(description="Failed attempts since the last success (circuit breaker)")
    circuit_open_until: datetime | None = Field(
        description="While the circuit is open nothing is sent to the endpoint (deliveries wait); after this "
        "one delivery probes it, and a success closes the circuit"
    )
    version: int
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> Literal["active", "inactive", "disabled"]:
        if self.active:
            return "active"
        return "disabled" if self.disabled_at is not None else "inactive"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def circuit(self) -> Literal["closed", "open", "half_open"]:
        """The endpoint's circuit breaker: ``open`` after repeated failures, ``half_open`` when a probe may go."""
        if self.circuit_open_until is None:
            return "closed"
        return "open" if datetime.now(UTC) < self.circuit_open_until else "half_open"


class SubscriptionCreated(SubscriptionRead):
    secret: str = Field(
        description="The signing secret (`whsec_…`). Shown only in this response: store it now. "
        "Verify requests with any Standard Webhooks library, "
        "e.g. `standardwebhooks.Webhook(secret).verify(body, headers)`."
    )


class RotateSecret(ApiModel):
    overlap_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] = Field(
        86400, description="How long requests are signed with both the old and the new secret (default 24 h)"
    )


class SecretRotated(ApiResponse):
    subscription_id: uuid.UUID
    secret: str = Field(description="The new signing secret; shown only in this response")
    previous_secret_expires_at: datetime | None
    version: int


class ReplayRange(ApiModel):
    created_from: Instant = Field(description="Deliveries created at or after this time")
    created_before: Instant | None = Field(None, description="... and before this time (default: now)")
    status: Literal["succeeded", "failed", "pending", "paused"] | None = Field(
        None, description="Only deliveries in this status (e.g. `failed`)"
    )


class ReplayResult(ApiResponse):
    replayed: int


# -- deliveries ------------------------------------------------------------------------------


class DeliveryRead(ApiResponse):
    id: uuid.UUID
    subscription_id: uuid.UUID
    kind: Literal["event", "ping"]
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts made, replays included")
    run_attempts: int = Field(description="Attempts since creation or the last replay (the step in the schedule)")
    replays: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    succeeded_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header of every request for this delivery (retries and replays alike)."""
        return str(self.id)


class AttemptRead(ApiResponse):
    id: int
    attempt_no: int
    url: str
    attempted_at: datetime
    latency_ms: int
    status_code: int | None
    error_class: str | None = Field(
        description="null on success; else http_status, redirect, timeout, connect, dns, blocked_address, "
        "insecure_url, tls, protocol, network or other"
    )
    error: str | None
    response_body: str | None = Field(description="The first 2 KB of the response body")
