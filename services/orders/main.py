"""The orders API process: ``uvicorn --factory services.orders.main:create_app``."""

from fastapi import FastAPI

from services.orders.api.router import router
from services.orders.config import OrdersSettings, get_settings
from services.orders.db import platform_tables
from shared.http import create_service_app
from shared.service import api_lifespan


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Salesline orders",
        description="Order entry from signed contracts, approval, fulfilment, delivery and payment. "
        "A delivery starts the satisfaction survey (`order.delivered`).",
        version="0.1.0",
        routers=[router],
        lifespan=api_lifespan(settings, platform_tables),
    )
