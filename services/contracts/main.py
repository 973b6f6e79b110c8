"""The contracts API process: ``uvicorn --factory services.contracts.main:create_app``."""

from fastapi import FastAPI

from services.contracts.api import signing_page
from services.contracts.api.router import router
from services.contracts.config import ContractsSettings, get_settings
from services.contracts.db import platform_tables
from shared.http import create_service_app
from shared.service import api_lifespan


def create_app(settings: ContractsSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="Salesline contracts",
        description="Drafting, legal review, approval by discount authority, e-signature and archive. "
        "A signed contract enters the order automatically (`contract.signed`).",
        version="0.1.0",
        routers=[signing_page.router, router],  # the page first: /signing/{token} is not a contract id
        lifespan=api_lifespan(settings, platform_tables),
    )
