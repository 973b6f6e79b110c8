"""The orders API process: ``uvicorn --factory services.orders.main:create_app``."""

from fastapi import FastAPI

from services.orders.api import erp
from services.orders.api.router import approvals_router, credit_router, reports_router, router
from services.orders.config import OrdersSettings, get_settings
from services.orders.db import platform_tables
from shared.http import create_service_app
from shared.service import api_lifespan


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Salesline orders",
        description="Order entry (from signed contracts and by hand), three-level approval with credit control, "
        "fulfilment with shipments, ERP callbacks (Standard Webhooks), payments and invoices. "
        "A delivery starts the satisfaction survey (`order.delivered`).",
        version="0.2.0",
        routers=[router, approvals_router, credit_router, reports_router, erp.router],
        lifespan=api_lifespan(settings, platform_tables),
    )
