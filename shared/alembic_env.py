"""What every service's ``migrations/env.py`` runs: Alembic on the service's own schema,
as the service's own role, with the version table inside that schema."""

from __future__ import annotations

import asyncio

from alembic import context, op
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import ServiceSettings
from shared.wakeup import notify_channel


def run_migrations(metadata: MetaData, settings: ServiceSettings) -> None:
    schema = settings.schema

    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        return name == schema if type_ == "schema" else True

    options = {
        "target_metadata": metadata,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": include_name,
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(url=settings.database_url(driver="postgresql"), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def online() -> None:
        engine = create_async_engine(settings.database_url(), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(online())


def create_outbox_notify_trigger(schema: str) -> None:
    """The initial migrations' NOTIFY trigger; later migrations drop it (why: ``shared.wakeup``)."""
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION "{schema}".notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{notify_channel(schema)}', ''); RETURN NULL; END $$;
        """
    )
    op.execute(
        f"""CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox
            FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_outbox()"""
    )


def drop_outbox_notify_trigger(schema: str) -> None:
    op.execute(f'DROP TRIGGER IF EXISTS outbox_notify ON "{schema}".outbox')
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".notify_outbox()')
