"""The service_desk API process: ``uvicorn --factory services.service_desk.main:create_app``."""

from fastapi import FastAPI

from services.service_desk.api.router import routers
from services.service_desk.config import ServiceDeskSettings, get_settings
from services.service_desk.db import platform_tables
from shared.http import create_service_app
from shared.service import api_lifespan


def create_app(settings: ServiceDeskSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Salesline service desk",
        description="After-sales tickets with business-hours SLAs, warranty and repair, knowledge base and surveys. "
        "A delivery sends a satisfaction survey (`order.delivered` → `survey.sent`).",
        version="0.1.0",
        routers=routers,
        lifespan=api_lifespan(settings, platform_tables),
    )
