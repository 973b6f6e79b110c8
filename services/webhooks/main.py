"""The webhooks API process: ``uvicorn --factory services.webhooks.main:create_app``."""

from fastapi import FastAPI

from services.webhooks.api.router import routers
from services.webhooks.config import WebhooksSettings, get_settings
from services.webhooks.db import platform_tables
from shared.http import create_service_app
from shared.service import api_lifespan


def create_app(settings: WebhooksSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Salesline webhooks",
        description="Signed (Standard Webhooks), retried, replayable webhooks for ERP systems, and the event "
        "history they catch up from. Consumes every event.",
        version="0.1.0",
        routers=routers,
        lifespan=api_lifespan(settings, platform_tables),
    )
