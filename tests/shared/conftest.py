"""Fixtures private to the HTTP-layer tests (``http_*``): a throwaway schema in the test
database and a tiny app built with ``create_service_app`` over it."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from sqlalchemy import BigInteger, Column, Integer, MetaData, Numeric, Table, Text, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import create_async_engine

from services.orders.config import get_settings as orders_settings
from services.orders.db import platform_tables
from shared.api import MONEY_PRECISION, MONEY_SCALE, ApiModel, ApiResponse, Currency, Int64, Money, SafeStr
from shared.auth import SALES_MANAGER, SALES_REP, Principal, current_principal, mint_token, require_roles
from shared.concurrency import check_if_match, set_etag
from shared.config import ServiceSettings
from shared.context import current_context
from shared.db import PlatformTables, create_engine, service_metadata, utc_timestamp
from shared.errors import Problem, problem_responses
from shared.http import create_service_app
from shared.idempotency import IdempotentRoute
from shared.pagination import Page, PageParams, fetch_page, page_params, paginated
from shared.uow import UnitOfWork

UNREACHABLE_AMQP_URL = "amqp://salesline:s3cret-broker-pw@127.0.0.1:1/"


@dataclass
class HttpSchema:
    name: str
    metadata: MetaData
    tables: PlatformTables
    widgets: Table


def _schema_objects(name: str) -> HttpSchema:
    metadata, tables = service_metadata(name)
    widgets = Table(
        "widgets",
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("owner", Text, nullable=False),
        Column("name", Text, nullable=False),
        Column("quantity", BigInteger, nullable=False),
        Column("price", Numeric(MONEY_PRECISION, MONEY_SCALE), nullable=False),
        Column("currency", Text, nullable=False),
        Column("attrs", JSONB, nullable=False),
        Column("version", Integer, nullable=False),
        utc_timestamp("created_at", nullable=False, server_default=func.clock_timestamp()),
    )
    return HttpSchema(name, metadata, tables, widgets)


def http_settings(**overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {"service_name": "test_http", "log_level": "WARNING"}
    values.update(overrides)
    return ServiceSettings(**values)


def http_admin_url(settings: ServiceSettings | None = None) -> str:
    return (settings or http_settings()).database_url(admin=True)


@pytest.fixture(scope="session")
async def http_schema() -> AsyncIterator[HttpSchema]:
    """A private schema with the platform tables and a ``widgets`` table; dropped afterwards."""
    schema = _schema_objects(f"test_http_{uuid.uuid4().hex[:10]}")
    engine = create_async_engine(http_admin_url())
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema.name}"'))
            await conn.run_sync(schema.metadata.create_all)
        yield schema
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema.name}" CASCADE'))
        await engine.dispose()


@pytest.fixture
async def http_db(http_schema: HttpSchema) -> AsyncIterator[asyncpg.Connection]:
    """An admin connection to the test database; the private schema is emptied first."""
    settings = http_settings()
    conn = await asyncpg.connect(settings.database_url(admin=True, driver="postgresql"))
    try:
        await conn.execute(f'TRUNCATE "{http_schema.name}".widgets, "{http_schema.name}".idempotency_keys')
        yield conn
    finally:
        await conn.close()


# -- the test service ------------------------------------------------------------------------


class WidgetCreate(ApiModel):
    name: str
    quantity: int = 1
    price: Money
    currency: Currency
    attrs: dict[str, Any] = {}


class WidgetUpdate(ApiModel):
    name: str


class WidgetRead(ApiResponse):
    id: uuid.UUID
    owner: str
    name: str
    quantity: int
    price: Money
    currency: str
    attrs: dict[str, Any]
    version: int
    created_at: datetime


Rep = Annotated[Principal, Depends(require_roles(SALES_REP, SALES_MANAGER))]


class Gates:
    """Lets a test hold the create endpoint in flight (the concurrent-retry case)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def build_router(schema: HttpSchema) -> APIRouter:
    widgets = schema.widgets
    router = APIRouter(prefix="/v1/widgets", tags=["widgets"], route_class=IdempotentRoute)

    def uow(request: Request) -> UnitOfWork:
        return UnitOfWork(request.app.state.engine, request.app.state.tables, "/salesline/test_http")

    @router.post("", status_code=201, response_model=WidgetRead, responses=problem_responses(409, 422))
    async def create_widget(body: WidgetCreate, request: Request, response: Response, principal: Rep) -> Any:
        if body.name == "slow":
            gates: Gates = request.app.state.gates
            gates.entered.set()
            await gates.release.wait()
        if body.name == "crash":
            raise RuntimeError("connection to postgresql://admin:hunter2@db failed")
        row = {
            "id": uuid.uuid4(),
            "owner": principal.sub,
            "name": body.name,
            "quantity": body.quantity,
            "price": body.price,
            "currency": body.currency,
            "attrs": body.attrs,
            "version": 1,
        }
        async with uow(request) as work:
            created = (await work.execute(widgets.insert().values(row).returning(widgets))).one()
            if body.name == "conflict":
                raise Problem(409, "Widget conflict", "rolled back", slug="widget-conflict")
            await work.commit()
        response.headers["Location"] = f"/v1/widgets/{created.id}"
        set_etag(response, created.version)
        return WidgetRead.model_validate(created)

    @router.get("", response_model=Page[WidgetRead])
    async def list_widgets(
        request: Request,
        response: Response,
        principal: Annotated[Principal, Depends(current_principal)],
        page: Annotated[PageParams, Depends(page_params)],
        owner: Annotated[SafeStr | None, Query(max_length=100)] = None,
        order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    ) -> Any:
        stmt = select(widgets)
        if owner is not None:
            stmt = stmt.where(widgets.c.owner == owner)
        async with request.app.state.engine.connect() as conn:
            rows, next_cursor = await fetch_page(
                conn, stmt, [widgets.c.created_at, widgets.c.id], page, descending=order == "desc"
            )
        return paginated(request, response, [WidgetRead.model_validate(r) for r in rows], next_cursor)

    @router.get("/by-quantity/{quantity}")
    async def count_by_quantity(
        quantity: Int64, request: Request, _: Annotated[Principal, Depends(current_principal)]
    ) -> dict[str, int]:
        async with request.app.state.engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(widgets).where(widgets.c.quantity == quantity))
        return {"count": n}

    @router.get("/{widget_id}", response_model=WidgetRead, responses=problem_responses(404))
    async def read_widget(
        widget_id: uuid.UUID, request: Request, response: Response, _: Annotated[Principal, Depends(current_principal)]
    ) -> Any:
        async with request.app.state.engine.connect() as conn:
            row = (await conn.execute(select(widgets).where(widgets.c.id == widget_id))).first()
        if row is None:
            raise Problem(404, "Widget not found", slug="not-found")
        set_etag(response, row.version)
        return WidgetRead.model_validate(row)

    @router.put("/{widget_id}", response_model=WidgetRead, responses=problem_responses(404, 412))
    async def update_widget(
        widget_id: uuid.UUID, body: WidgetUpdate, request: Request, response: Response, _: Rep
    ) -> Any:
        async with uow(request) as work:
            row = (await work.execute(select(widgets).where(widgets.c.id == widget_id).with_for_update())).first()
            if row is None:
                raise Problem(404, "Widget not found", slug="not-found")
            check_if_match(request, row.version)
            updated = (
                await work.execute(
                    update(widgets)
                    .where(widgets.c.id == widget_id, widgets.c.version == row.version)
                    .values(name=body.name, version=row.version + 1)
                    .returning(widgets)
                )
            ).one()
            await work.commit()
        set_etag(response, updated.version)
        return WidgetRead.model_validate(updated)

    return router


def build_context_router() -> APIRouter:
    router = APIRouter(prefix="/v1/probe", tags=["probe"])

    @router.get("/context")
    async def context() -> dict[str, Any]:
        ctx = current_context.get()
        return {
            "request_id": ctx.request_id,
            "correlation_id": ctx.correlation_id,
            "causation_id": ctx.causation_id,
            "traceparent": ctx.traceparent,
        }

    @router.get("/crash")
    async def crash() -> None:
        raise ValueError("secret-api-key=abc123 should never be shown")

    return router


def build_app(schema: HttpSchema, settings: ServiceSettings, *, engine_url: str | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_async_engine(engine_url or http_admin_url(settings), pool_size=5)
        app.state.tables = schema.tables
        app.state.gates = Gates()
        yield

    return create_service_app(
        settings,
        title="HTTP layer test",
        description="A tiny service exercising shared.http",
        version="9.9.9",
        routers=[build_router(schema), build_context_router()],
        lifespan=lifespan,
        configure_logs=False,
    )


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and a client over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def http_app(http_schema: HttpSchema, http_db: asyncpg.Connection) -> AsyncIterator[FastAPI]:
    app = build_app(http_schema, http_settings(amqp_url=os.environ.get("SALESLINE_AMQP_URL", UNREACHABLE_AMQP_URL)))
    yield app


@pytest.fixture
async def http_client(http_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(http_app) as client:
        yield client


def bearer(sub: str = "rep-1", *roles: str, ttl: int = 600, **claims: Any) -> dict[str, str]:
    token = mint_token(http_settings(), sub=sub, roles=list(roles or [SALES_REP]), ttl=ttl, **claims)
    return {"Authorization": f"Bearer {token}"}


async def count(conn: asyncpg.Connection, schema: HttpSchema, table: str) -> int:
    return await conn.fetchval(f'SELECT count(*) FROM "{schema.name}"."{table}"')


def widget_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "gear", "quantity": 3, "price": "12.50", "currency": "CNY"}
    body.update(overrides)
    return body


def now_utc() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def uow_factory(clean_db: asyncpg.Connection) -> AsyncIterator:
    """New units of work on the orders service's schema of a clean test database (the shared
    library's tests borrow its platform tables), one engine for all."""
    engine = create_engine(orders_settings())
    try:
        yield lambda: UnitOfWork(engine, platform_tables, "/salesline/orders")
    finally:
        await engine.dispose()
