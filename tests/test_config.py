"""Settings: per-service overrides and the refusal to run production on development secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.orders.config import OrdersSettings
from services.service_desk.config import ServiceDeskSettings
from shared.config import DEV_JWT_SECRET, ServiceSettings


def test_a_service_specific_variable_beats_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLINE_DB_PASSWORD", "shared-pw")
    monkeypatch.setenv("SALESLINE_ORDERS_DB_PASSWORD", "orders-pw")
    monkeypatch.setenv("SALESLINE_ORDERS_RETRY_DELAYS_MS", "[1, 2, 3]")  # JSON, like the shared prefix
    orders = OrdersSettings()
    assert orders.db_role_password == "orders-pw"
    assert orders.retry_delays_ms == [1, 2, 3]
    assert ServiceDeskSettings().db_role_password == "shared-pw"


def test_each_service_has_its_own_role_and_schema() -> None:
    orders = OrdersSettings()
    assert (orders.db_role, orders.schema, orders.source) == ("salesline_orders", "orders", "/salesline/orders")


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("SALESLINE_DB_PASSWORD", "a-real-password")
    monkeypatch.delenv("SALESLINE_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="development default"):
        ServiceSettings()
    monkeypatch.setenv("SALESLINE_JWT_SECRET", "a-real-secret-" + "x" * 32)
    assert ServiceSettings().jwt_secret != DEV_JWT_SECRET


def test_production_refuses_development_database_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("SALESLINE_JWT_SECRET", "a-real-secret-" + "x" * 32)
    monkeypatch.delenv("SALESLINE_DB_PASSWORD", raising=False)
    monkeypatch.delenv("SALESLINE_ORDERS_DB_PASSWORD", raising=False)
    with pytest.raises(ValidationError, match="DB_PASSWORD"):
        OrdersSettings()
