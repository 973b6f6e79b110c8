"""Database bootstrap and migrations for every service.

    python -m shared.migrate                    # bootstrap, then upgrade every service to head
    python -m shared.migrate upgrade orders     # one service
    python -m shared.migrate revision orders -m "add shipments"   # autogenerate a revision
    python -m shared.migrate check              # fail if any service's models differ from its migrations

    python -m shared.migrate topology           # declare every consumer's queues on the broker

Bootstrap (as the admin role): creates the database if missing, one login role per service
(``salesline_<service>``) owning one schema of the same name as the service, and nothing
else: a service's role cannot read another service's schema. Migrations then run as the
service's own role, with Alembic's version table in the service's schema.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from shared import bus
from shared.config import ServiceSettings
from shared.db import asyncpg_dsn

SERVICES = ("leads", "contracts", "orders", "service_desk", "webhooks")
ROOT = Path(__file__).resolve().parent.parent


def service_settings(service: str) -> ServiceSettings:
    module = importlib.import_module(f"services.{service}.config")
    return module.get_settings()


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def bootstrap(services: tuple[str, ...] = SERVICES) -> None:
    base = ServiceSettings()
    admin_dsn = asyncpg_dsn(base, admin=True)
    server = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        if not await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", base.db_name):
            await server.execute(f'CREATE DATABASE "{base.db_name}"')
    finally:
        await server.close()

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'REVOKE ALL ON DATABASE "{base.db_name}" FROM PUBLIC')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in services:
            settings = service_settings(service)
            role, password = settings.db_role, _quote_literal(settings.db_role_password)
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(f'{verb} ROLE "{role}" LOGIN PASSWORD {password}')
            await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{base.db_name}" TO "{role}"')
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}" AUTHORIZATION "{role}"')
            # Tables, sequences and functions a service creates stay its own; nobody else gets in.
            await conn.execute(f'REVOKE ALL ON SCHEMA "{settings.schema}" FROM PUBLIC')
    finally:
        await conn.close()


async def declare_topology(services: tuple[str, ...] = SERVICES) -> None:
    """Declare the exchange and every consumer's queues before anything publishes.

    ``mandatory`` only tells a publisher that *no* queue took an event; a consumer whose queue
    did not exist yet would silently miss it while another consumer's queue got it. Declaring
    all queues at deploy time, before any service runs, closes that gap (workers re-declare
    the same topology at every connect).
    """
    connection = None
    for service in services:
        settings = service_settings(service)
        consumers = importlib.import_module(f"services.{service}.consumers")
        if connection is None:
            connection = await bus.connect(settings, name="migrate")
        channel = await connection.channel()
        for subscription in consumers.SUBSCRIPTIONS:
            await bus.declare_consumer_queues(
                channel, settings, settings.queue_name(subscription.name), subscription.binding_keys
            )
        await channel.close()
    if connection is not None:
        await connection.close()


def alembic_config(service: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    config.set_main_option("version_path_separator", "os")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    up = sub.add_parser("upgrade", help="bootstrap and upgrade to head (default)")
    up.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default: all)")
    sub.add_parser("bootstrap", help="roles, schemas and database only")
    sub.add_parser("topology", help="declare the exchange and every consumer's queues")
    rev = sub.add_parser("revision", help="autogenerate a revision for one service")
    rev.add_argument("service", choices=SERVICES)
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser("check", help="fail when models and migrations differ")
    args = parser.parse_args(argv)

    cmd = args.cmd or "upgrade"
    services = tuple(getattr(args, "services", None) or SERVICES)
    if unknown := set(services) - set(SERVICES):
        parser.error(f"unknown services: {', '.join(sorted(unknown))}")
    if cmd in ("upgrade", "bootstrap"):
        asyncio.run(bootstrap(services))
        if cmd == "upgrade":
            for service in services:
                command.upgrade(alembic_config(service), "head")
                print(f"migrated {service}")
            asyncio.run(declare_topology(services))
            print("declared the broker topology")
    elif cmd == "topology":
        asyncio.run(declare_topology(services))
    elif cmd == "revision":
        command.revision(alembic_config(args.service), message=args.message, autogenerate=True)
    elif cmd == "check":
        for service in SERVICES:
            command.check(alembic_config(service))
            print(f"{service}: models match migrations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
