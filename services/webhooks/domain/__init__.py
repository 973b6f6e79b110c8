"""The webhooks domain: subscriptions (patterns, secrets, endpoint health) and the retry policy."""

from services.webhooks.domain.retry import Decision, Outcome, RetryPolicy
from services.webhooks.domain.subscription import (
    CircuitPolicy,
    CircuitState,
    DisabledReason,
    InvalidPattern,
    Subscription,
    check_patterns,
    pattern_matches,
)

__all__ = [
    "CircuitPolicy",
    "CircuitState",
    "Decision",
    "DisabledReason",
    "InvalidPattern",
    "Outcome",
    "RetryPolicy",
    "Subscription",
    "check_patterns",
    "pattern_matches",
]
