"""The bare baseline of benchmark 3: FastAPI + one raw asyncpg insert, nothing else.

``uvicorn --factory benchmarks.bare_app:create_app``; ``BENCH_BARE_DSN`` names the database
(the benchmark creates the ``bench.things`` table). No auth, no validation beyond JSON, no
unit of work, no outbox: what the contracts write path (benchmark 3) and order approvals
(benchmark 6, ``POST /v1/things/{id}/approve``: one ``UPDATE``) are compared against.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Body, FastAPI, HTTPException, Request

from shared.config import ServiceSettings

CREATE_TABLE = """
    CREATE SCHEMA IF NOT EXISTS bench;
    CREATE TABLE IF NOT EXISTS bench.things (
        id uuid PRIMARY KEY,
        body jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())
"""


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # As many connections per process as a service's engine (db_pool_size).
        size = int(os.environ.get("SALESLINE_DB_POOL_SIZE", ServiceSettings.model_fields["db_pool_size"].default))
        app.state.pool = await asyncpg.create_pool(os.environ["BENCH_BARE_DSN"], min_size=size, max_size=size)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None)

    @app.post("/v1/things", status_code=201)
    async def create_thing(request: Request, body: dict[str, Any] = Body()) -> dict[str, str]:
        thing_id = uuid.uuid4()
        await request.app.state.pool.execute(
            "INSERT INTO bench.things (id, body) VALUES ($1, $2::jsonb)", thing_id, json.dumps(body)
        )
        return {"id": str(thing_id)}

    @app.post("/v1/things/{thing_id}/approve")
    async def approve_thing(request: Request, thing_id: uuid.UUID) -> dict[str, str]:
        approved = await request.app.state.pool.fetchval(
            "UPDATE bench.things SET body = body || jsonb_build_object('approvals', "
            "coalesce((body->>'approvals')::int, 0) + 1) WHERE id = $1 RETURNING id",
            thing_id,
        )
        if approved is None:
            raise HTTPException(404)
        return {"id": str(thing_id)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
