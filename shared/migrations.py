"""Alembic, one schema and one version table per service, run as its own step
(`journeyman migrate`), never by replicas racing at start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

SERVICES = ("profile", "segmenter", "journey", "channels")
_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(service: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_ROOT / "services" / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["schema"] = service
    return cfg


def upgrade(database_url: str, services: tuple[str, ...] = SERVICES) -> None:
    """Bring every service schema to its latest revisions (branches, e.g. measurement, included)."""
    for service in services:
        command.upgrade(alembic_config(service, database_url), "heads")


def run_env(metadata: MetaData) -> None:
    """The body of each service's `migrations/env.py` (online, async, schema-scoped)."""
    schema = context.config.attributes.get("schema") or metadata.schema

    def migrate(conn: Connection) -> None:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=conn,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, kind, _parents: kind != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = async_engine_from_config(
            context.config.get_section(context.config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        async with engine.begin() as conn:
            await conn.run_sync(migrate)
        await engine.dispose()

    asyncio.run(run())
