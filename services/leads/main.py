"""The leads API process: ``uvicorn --factory services.leads.main:create_app``."""

from fastapi import FastAPI

from services.leads.api.leads import router as leads_router
from services.leads.api.router import capture_routers, router, sales_routers
from services.leads.config import LeadsSettings, get_settings
from services.leads.db import platform_tables
from shared.http import create_service_app
from shared.service import api_lifespan


def create_app(settings: LeadsSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Salesline leads",
        description="The sales CRM: leads, public pool, accounts, activities, opportunities, quotes and targets. "
        "A signed contract marks its account signed.",
        version="0.1.0",
        routers=[leads_router, router, *sales_routers(), *capture_routers()],
        lifespan=api_lifespan(settings, platform_tables),
    )
