"""Webhooks: ERP subscriptions with signed, retried, replayable deliveries and an event history."""
