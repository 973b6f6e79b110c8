"""Pure logic: the retry policy, Retry-After parsing, endpoint health, secret rotation, patterns
and the address rules (no database, no network)."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.webhooks.config import DEFAULT_RETRY_SCHEDULE
from services.webhooks.domain import (
    CircuitPolicy,
    CircuitState,
    InvalidPattern,
    Outcome,
    RetryPolicy,
    Subscription,
    check_patterns,
)
from services.webhooks.sender import parse_retry_after, signature_headers
from services.webhooks.urlguard import blocked_reason, embedded_ipv4, literal_address
from shared.events import EVENT_TYPES

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
FAIL = Outcome(status_code=500, error_class="http_status")


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.9), (0.5, 1.0), (1.0, 1.1)])
def test_delays_carry_jitter_within_ten_percent(draw: float, factor: float) -> None:
    policy = RetryPolicy(DEFAULT_RETRY_SCHEDULE, jitter=0.1, random=lambda: draw)
    assert policy.first_attempt_at(NOW) == NOW  # "immediately" stays immediate
    for attempts, delay in enumerate(DEFAULT_RETRY_SCHEDULE[1:], start=1):
        decision = policy.after(FAIL, attempts, NOW)
        assert decision.delay == pytest.approx(delay * factor)


def test_the_run_ends_on_success_gone_exhaustion_or_for_a_ping() -> None:
    policy = RetryPolicy(DEFAULT_RETRY_SCHEDULE, jitter=0)
    assert policy.after(Outcome(status_code=204), 1, NOW).next_attempt_at is None
    assert policy.after(Outcome(status_code=410, error_class="http_status"), 1, NOW).next_attempt_at is None
    assert policy.after(FAIL, 9, NOW).next_attempt_at == NOW + timedelta(hours=24)
    assert policy.after(FAIL, 10, NOW).next_attempt_at is None
    assert policy.after(FAIL, 1, NOW, retry=False).next_attempt_at is None
    assert policy.max_attempts == 10
    assert not Outcome(status_code=302, error_class="redirect").succeeded
    assert not Outcome(error_class="timeout").succeeded


def test_retry_after_waits_at_least_as_long_as_asked_within_a_cap() -> None:
    policy = RetryPolicy(DEFAULT_RETRY_SCHEDULE, jitter=0, max_retry_after=3600)
    assert policy.after(Outcome(429, "http_status", 120), 1, NOW).delay == 120
    assert policy.after(Outcome(503, "http_status", 1), 2, NOW).delay == 300
    assert policy.after(Outcome(429, "http_status", 10**9), 1, NOW).delay == 3600
    assert policy.after(Outcome(500, "http_status", 120), 1, NOW).delay == 5  # only for 429/503


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 25 Nov 2026 09:00:00 GMT", now=NOW) == 3600
    assert parse_retry_after("Wed, 25 Nov 2026 07:00:00 GMT", now=NOW) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("-5") is None


def _subscription(**kwargs) -> Subscription:
    return Subscription(
        id=uuid.uuid4(),
        owner_id="erp-1",
        url="https://erp.example.com/",
        event_types=("*",),
        secret="current",
        created_at=NOW,
        updated_at=NOW,
        version=1,
        **kwargs,
    )


def test_five_days_of_failures_disable_and_a_success_forgives() -> None:
    five_days = timedelta(days=5)
    s = _subscription()
    assert s.record_failure(NOW, disable_after=five_days) and s.failing_since == NOW
    # Another failure only counts (for the circuit breaker); the run of failures began at NOW.
    assert s.record_failure(NOW + timedelta(days=4), disable_after=five_days)
    assert s.failing_since == NOW and s.consecutive_failures == 2 and s.active
    assert s.record_success(NOW + timedelta(days=4, hours=1)) and s.failing_since is None
    s.record_failure(NOW + timedelta(days=5), disable_after=five_days)
    assert s.active
    s.record_failure(NOW + timedelta(days=10), disable_after=five_days)
    assert not s.active and s.disabled_reason == "failing"
    [(event, _)] = s.take_events()
    assert event.event_type == "webhook_subscription.disabled.v1" and event.failing_since == NOW + timedelta(days=5)
    assert not s.record_failure(NOW + timedelta(days=11), disable_after=five_days)  # already off: nothing more
    s.change(NOW + timedelta(days=12), active=True)
    assert s.active and s.disabled_at is None and s.failing_since is None


def test_gone_disables_at_once() -> None:
    s = _subscription()
    s.record_failure(NOW, disable_after=timedelta(days=5), gone=True, status_code=410)
    assert not s.active and s.disabled_reason == "endpoint_gone"
    [(event, version)] = s.take_events()
    assert event.last_status_code == 410 and version == s.version


def test_rotation_signs_with_both_secrets_until_the_overlap_ends() -> None:
    s = _subscription()
    s.rotate_secret("next", NOW, timedelta(hours=1))
    assert s.signing_secrets(NOW + timedelta(minutes=59)) == ["next", "current"]
    assert s.signing_secrets(NOW + timedelta(hours=1)) == ["next"]
    s.rotate_secret("third", NOW, timedelta(0))
    assert s.signing_secrets(NOW) == ["third"] and s.previous_secret is None
    assert "current" not in repr(s) and "third" not in repr(s)


def test_every_rotated_signature_verifies_with_its_own_secret() -> None:
    from standardwebhooks import Webhook

    a, b = "whsec_" + "A" * 43 + "=", "whsec_" + "B" * 43 + "="
    headers = signature_headers("msg", '{"x":1}', [a, b], datetime.now(UTC))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (a, b):
        assert Webhook(secret).verify('{"x":1}', headers) == {"x": 1}


def test_patterns() -> None:
    assert check_patterns(["order.*", "order.*", "*"], EVENT_TYPES) == ("order.*", "*")
    for bad in (["order"], ["*.created.v1"], ["order.*.v1"], ["contract.signed.v9"], [""], []):
        with pytest.raises(InvalidPattern):
            check_patterns(bad, EVENT_TYPES)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("169.254.169.254", "169.254.169.254"),
        ("deadbeef.example", None),
        ("erp.example.com", None),
    ],
)
def test_literal_addresses_in_every_spelling(text: str, address: str | None) -> None:
    found = literal_address(text)
    assert (str(found) if found else None) == address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:a00:1::", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "unique-local"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "private"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_blocked_reason(address: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


def test_the_allow_list_admits_a_network_in_any_spelling_but_nothing_else() -> None:
    allowed = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.20.0.0/16")]
    assert blocked_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert blocked_reason(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert blocked_reason(ipaddress.ip_address("10.21.0.1"), allowed) == "private"
    assert blocked_reason(ipaddress.ip_address("169.254.169.254"), allowed) == "link-local"
    assert embedded_ipv4(ipaddress.ip_address("::1")) is None


def test_the_circuit_opens_at_the_threshold_doubles_after_a_failed_probe_and_closes_on_success() -> None:
    policy = CircuitPolicy(failure_threshold=3, open_seconds=30, max_open_seconds=100)
    s = _subscription()
    week = timedelta(days=7)
    for _ in range(2):
        s.record_failure(NOW, disable_after=week, circuit=policy)
    assert s.circuit_state(NOW) is CircuitState.CLOSED and s.consecutive_failures == 2
    version = s.version
    s.record_failure(NOW, disable_after=week, circuit=policy)
    assert s.circuit_state(NOW) is CircuitState.OPEN and s.circuit_open_until == NOW + timedelta(seconds=30)
    assert s.version == version + 1  # opening shows in the ETag
    # Requests already in flight that fail while it is open change nothing but the count.
    s.record_failure(NOW + timedelta(seconds=1), disable_after=week, circuit=policy)
    assert s.circuit_open_until == NOW + timedelta(seconds=30) and s.consecutive_failures == 4
    half_open = NOW + timedelta(seconds=30)
    assert s.circuit_state(half_open) is CircuitState.HALF_OPEN
    s.record_failure(half_open, disable_after=week, circuit=policy)  # the probe fails: twice as long
    assert s.circuit_open_until == half_open + timedelta(seconds=60)
    later = half_open + timedelta(seconds=60)
    s.record_failure(later, disable_after=week, circuit=policy)  # and again, up to the maximum
    assert s.circuit_open_until == later + timedelta(seconds=100)
    assert s.record_success(later + timedelta(seconds=100))
    assert s.circuit_state(later) is CircuitState.CLOSED and s.consecutive_failures == 0
    assert s.failing_since is None and s.circuit_opened_at is None


def test_re_enabling_closes_the_circuit() -> None:
    s = _subscription()
    s.record_failure(NOW, disable_after=timedelta(days=5), circuit=CircuitPolicy(failure_threshold=1))
    s.record_failure(NOW + timedelta(days=6), disable_after=timedelta(days=5))
    assert not s.active and s.circuit_open_until is not None
    s.change(NOW + timedelta(days=7), active=True)
    assert s.circuit_state(NOW + timedelta(days=7)) is CircuitState.CLOSED and s.consecutive_failures == 0
