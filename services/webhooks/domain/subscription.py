"""The webhook subscription aggregate: where an integrator wants which events, and whether the
endpoint is healthy enough to keep receiving them.

Event type patterns: an exact catalog type (``contract.signed.v1``), a prefix ending in
``.*`` (``order.*`` matches every ``order.…`` type, ``order.created.*`` every version of it),
or ``*`` (everything).

Health: the first failed delivery starts ``failing_since``; any success clears it. A failure
when ``failing_since`` is older than the disable threshold (5 days), or a 410 Gone, disables
the subscription and records ``webhook_subscription.disabled.v1``. Re-enabling (``active``
back to true) clears all of it.

Circuit breaker: each failed attempt counts in ``consecutive_failures``; at the policy's
threshold the circuit opens until ``circuit_open_until`` and the dispatcher sends nothing to the
endpoint (its deliveries stay due, no attempt is spent timing out). Once that time has passed
the circuit is half-open: one delivery goes as a probe. A success closes it (and resets the
count); a failure opens it again for twice as long, up to the policy's maximum. It lives in the
row, so it survives restarts and is shared by every dispatcher.

Secrets are held here only as ciphertext (see ``services/webhooks/crypto.py``); the plaintext
exists at creation and rotation, in the response, and in the dispatcher while it signs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain import Aggregate, DomainError
from shared.events import WebhookSubscriptionDisabled

MAX_PATTERNS = 50
_PATTERN_RE = re.compile(r"\*|[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*(?:\.\*)?")


class DisabledReason(StrEnum):
    ENDPOINT_GONE = "endpoint_gone"
    FAILING = "failing"


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int = 5
    open_seconds: float = 30.0
    max_open_seconds: float = 600.0


class InvalidPattern(DomainError):
    title = "Invalid event type pattern"


def check_patterns(patterns: Iterable[str], known_types: Collection[str]) -> tuple[str, ...]:
    """The patterns, de-duplicated in order; an exact type must be one the catalog declares."""
    result: list[str] = []
    for pattern in patterns:
        if not _PATTERN_RE.fullmatch(pattern):
            raise InvalidPattern(
                f"{pattern!r} is not an event type pattern: use a type such as 'contract.signed.v1', "
                "a prefix such as 'order.*', or '*'"
            )
        if not pattern.endswith("*") and pattern not in known_types:
            raise InvalidPattern(f"{pattern!r} is not an event type Salesline publishes (see GET /v1/events)")
        if pattern not in result:
            result.append(pattern)
    if not result:
        raise InvalidPattern("at least one event type pattern is needed")
    if len(result) > MAX_PATTERNS:
        raise InvalidPattern(f"at most {MAX_PATTERNS} patterns")
    return tuple(result)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """The same rule as the SQL in ``db.record_event`` (tested against each other)."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@dataclass(eq=False)
class Subscription(Aggregate):
    id: uuid.UUID
    owner_id: str
    url: str
    event_types: tuple[str, ...]
    secret: str = field(repr=False)  # ciphertext
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    active: bool = True
    previous_secret: str | None = field(default=None, repr=False)  # ciphertext
    previous_secret_expires_at: datetime | None = None
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    circuit_opened_at: datetime | None = None
    circuit_open_until: datetime | None = None

    def _touch(self, now: datetime) -> None:
        """A change without an event still moves the ETag."""
        self.version += 1
        self.updated_at = now

    # -- what the owner changes ------------------------------------------------------------

    def change(
        self,
        now: datetime,
        *,
        url: str | None = None,
        event_types: tuple[str, ...] | None = None,
        description: str | None = None,
        clear_description: bool = False,
        active: bool | None = None,
    ) -> bool:
        """Apply a partial update; returns whether ``active`` changed (deliveries pause or resume)."""
        if url is not None:
            self.url = url
        if event_types is not None:
            self.event_types = event_types
        if description is not None or clear_description:
            self.description = description
        toggled = active is not None and active != self.active
        if active is not None:
            self.active = active
            if active:
                self.failing_since = self.disabled_at = self.disabled_reason = None
                self._close_circuit()
        self._touch(now)
        return toggled

    def rotate_secret(self, new_secret: str, now: datetime, overlap: timedelta) -> None:
        """Sign with ``new_secret`` from now on, and with the current one too until ``now + overlap``."""
        if overlap > timedelta(0):
            self.previous_secret, self.previous_secret_expires_at = self.secret, now + overlap
        else:
            self.previous_secret = self.previous_secret_expires_at = None
        self.secret = new_secret
        self._touch(now)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The ciphertexts to sign with: the current secret, plus the previous one while it overlaps."""
        secrets = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and now < self.previous_secret_expires_at:
            secrets.append(self.previous_secret)
        return secrets

    # -- what deliveries tell it -----------------------------------------------------------

    def circuit_state(self, now: datetime) -> CircuitState:
        if self.circuit_open_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if now < self.circuit_open_until else CircuitState.HALF_OPEN

    def record_success(self, now: datetime) -> bool:
        """Returns whether anything changed (so the row is written only then)."""
        changed = self.consecutive_failures != 0 or self.circuit_open_until is not None
        self._close_circuit()
        if self.failing_since is not None:
            self.failing_since = None
            changed = True
        if changed:
            self._touch(now)
        return changed

    def record_failure(
        self,
        now: datetime,
        *,
        disable_after: timedelta,
        gone: bool = False,
        status_code: int | None = None,
        circuit: CircuitPolicy | None = None,
    ) -> bool:
        """Returns whether anything changed; may open the circuit or disable the subscription."""
        if not self.active:
            return False
        if gone:
            self._disable(DisabledReason.ENDPOINT_GONE, now, status_code)
            return True
        self.consecutive_failures += 1
        if circuit is not None:
            self._trip(now, circuit)
        if self.failing_since is None:
            self.failing_since = now
            self._touch(now)
        elif now - self.failing_since >= disable_after:
            self._disable(DisabledReason.FAILING, now, status_code)
        return True

    def _trip(self, now: datetime, policy: CircuitPolicy) -> None:
        """Open the circuit at the threshold; a failed probe (half-open) opens it for twice as long.
        Failures of requests that were already in flight while it is open change nothing."""
        state = self.circuit_state(now)
        if state is CircuitState.OPEN:
            return
        if state is CircuitState.CLOSED:
            if self.consecutive_failures < policy.failure_threshold:
                return
            seconds = policy.open_seconds
        else:
            assert self.circuit_open_until is not None and self.circuit_opened_at is not None
            seconds = 2 * (self.circuit_open_until - self.circuit_opened_at).total_seconds()
        seconds = min(max(seconds, policy.open_seconds), policy.max_open_seconds)
        self.circuit_opened_at, self.circuit_open_until = now, now + timedelta(seconds=seconds)
        self._touch(now)

    def _close_circuit(self) -> None:
        self.consecutive_failures = 0
        self.circuit_opened_at = self.circuit_open_until = None

    def _disable(self, reason: DisabledReason, now: datetime, status_code: int | None) -> None:
        self.active = False
        self.disabled_at, self.disabled_reason, self.updated_at = now, reason.value, now
        self.record(
            WebhookSubscriptionDisabled(
                subscription_id=self.id,
                owner_id=self.owner_id,
                reason=reason.value,
                disabled_at=now,
                failing_since=self.failing_since,
                last_status_code=status_code,
            )
        )
