"""Test harness: real PostgreSQL and RabbitMQ (started by `make test` on their own ports).

* The session gets a fresh database (``salesline_test``) migrated by ``shared.migrate``.
* ``clean_db`` empties every service table before a test.
* ``bus`` gives a test its own exchange and queue names, deleted afterwards.
* ``system`` runs the five workers in-process and hands out API clients and tokens.

Several people (or agents) testing on one machine at once: give each run its own database
(``SALESLINE_TEST_DB_NAME=salesline_test_<you>``; the session drops and recreates it) and
leave out ``-m slow`` tests, which stop and start the shared RabbitMQ for real. Run a subset
against the running test instance with::

    eval "$(RUN_DIR=.run/test SALESLINE_DB_PORT=56432 SALESLINE_AMQP_PORT=56672 bash scripts/infra.sh env)"
    SALESLINE_TEST_DB_NAME=salesline_test_me PYTHONPATH=. .venv/bin/python -m pytest -m "not slow" tests/...
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests must never touch a development database: their own name (another one per concurrent
# run, e.g. SALESLINE_TEST_DB_NAME=salesline_test_2), and short retry delays.
TEST_DB_NAME = os.environ.get("SALESLINE_TEST_DB_NAME", "salesline_test")
os.environ["SALESLINE_DB_NAME"] = TEST_DB_NAME
os.environ.setdefault("SALESLINE_ENVIRONMENT", "test")
os.environ.setdefault("SALESLINE_DB_PORT", "56432")
os.environ.setdefault("SALESLINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:56672/")
os.environ["SALESLINE_RETRY_DELAYS_MS"] = "[100, 200]"
os.environ["SALESLINE_RELAY_POLL_SECONDS"] = "0.2"
os.environ["SALESLINE_TIMER_POLL_SECONDS"] = "0.2"
os.environ["SALESLINE_RELAY_LEASE_SECONDS"] = "3"
os.environ.setdefault("SALESLINE_LOG_LEVEL", "WARNING")

from shared.config import ServiceSettings  # noqa: E402
from shared.migrate import SERVICES, declare_topology  # noqa: E402


def service_module(service: str, name: str) -> Any:
    return importlib.import_module(f"services.{service}.{name}")


def settings_for(service: str) -> ServiceSettings:
    return service_module(service, "config").get_settings()


def clear_settings_caches() -> None:
    for service in SERVICES:
        service_module(service, "config").get_settings.cache_clear()


def admin_dsn(database: str | None = None) -> str:
    base = ServiceSettings()
    return base.database_url(admin=True, driver="postgresql").rsplit("/", 1)[0] + "/" + (database or base.db_name)


async def wait_until(
    predicate: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session", autouse=True)
def test_database() -> None:
    """A freshly migrated database for this run."""

    async def recreate() -> None:
        conn = await asyncpg.connect(admin_dsn("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB_NAME}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(recreate())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "shared.migrate"], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


@pytest.fixture
async def admin_db() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(admin_dsn())
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def clean_db(admin_db: asyncpg.Connection) -> asyncpg.Connection:
    tables = await admin_db.fetch(
        """SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables
           WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'""",
        list(SERVICES),
    )
    await admin_db.execute(f"TRUNCATE {', '.join(t['name'] for t in tables)} RESTART IDENTITY")
    return admin_db


@pytest.fixture
async def bus(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """This test's own exchange and queue prefix; its queues are deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    monkeypatch.setenv("SALESLINE_EXCHANGE", f"salesline.test.{tag}")
    monkeypatch.setenv("SALESLINE_QUEUE_PREFIX", f"test.{tag}.")
    clear_settings_caches()
    await declare_topology()  # as `shared.migrate` does before anything runs
    yield tag
    clear_settings_caches()
    await delete_test_queues(tag)


async def delete_test_queues(tag: str) -> None:
    from shared.bus import dead_letter_queue_name, retry_queue_name

    names = set()
    for service in SERVICES:
        for subscription in service_module(service, "consumers").SUBSCRIPTIONS:
            names.add(subscription.name)
    names |= {f"extra.{i}" for i in range(4)}
    connection = await aio_pika.connect(os.environ["SALESLINE_AMQP_URL"], timeout=5)
    async with connection:
        for name in names:
            queue = f"test.{tag}.{name}"
            for q in [queue, dead_letter_queue_name(queue), *(retry_queue_name(queue, d) for d in (100, 200))]:
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(q)
                with contextlib.suppress(Exception):
                    await channel.close()
        channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(f"salesline.test.{tag}")


class System:
    """The five services of one test: in-process workers and API clients over ASGI."""

    def __init__(self) -> None:
        self._stopping: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._apps: dict[str, contextlib.AsyncExitStack] = {}
        self.clients: dict[str, httpx.AsyncClient] = {}

    async def start_worker(self, service: str) -> None:
        from shared.service import run_worker

        consumers = service_module(service, "consumers")
        stopping = asyncio.Event()
        self._stopping[service] = stopping
        self._tasks[service] = asyncio.create_task(
            run_worker(
                settings_for(service),
                service_module(service, "db").platform_tables,
                subscriptions=consumers.SUBSCRIPTIONS,
                timers=getattr(consumers, "TIMERS", {}),
                stopping=stopping,
            )
        )

    async def stop_worker(self, service: str) -> None:
        self._stopping.pop(service).set()
        task = self._tasks.pop(service)
        await asyncio.wait_for(task, timeout=15)

    async def client(self, service: str) -> httpx.AsyncClient:
        if service not in self.clients:
            app = service_module(service, "main").create_app(settings_for(service))
            stack = contextlib.AsyncExitStack()
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}.test")
            )
            self._apps[service] = stack
            self.clients[service] = client
        return self.clients[service]

    async def close(self) -> None:
        for service in list(self._tasks):
            await self.stop_worker(service)
        for stack in self._apps.values():
            await stack.aclose()


@pytest.fixture
async def system(clean_db: asyncpg.Connection, bus: str) -> AsyncIterator[System]:
    system = System()
    try:
        yield system
    finally:
        await system.close()


def token(sub: str, *roles: str, **claims: Any) -> str:
    from shared.auth import mint_token

    return mint_token(sub=sub, roles=list(roles), settings=ServiceSettings(), **claims)


def auth(sub: str, *roles: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, *roles, **claims)}"}


def spawn(module: str, *, log_name: str, **env_overrides: str) -> subprocess.Popen:
    """Run a service process for real (for tests that kill it)."""
    log_dir = ROOT / ".run" / "test" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{log_name}.log", "ab")
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_overrides)
    return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log, stderr=log)
