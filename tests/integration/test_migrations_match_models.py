"""Each service's migrations build exactly the tables its models declare: a column, index or
constraint added to one and not the other is a difference alembic's autogenerate reports."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.migrations import SERVICES

pytestmark = pytest.mark.integration


def _differences(conn: Connection, metadata: MetaData) -> list[Any]:
    schema = metadata.schema

    def ours(name: str | None, kind: str, parent: Any) -> bool:
        if kind == "schema":
            return name == schema
        return not (kind == "table" and name == "alembic_version")

    context = MigrationContext.configure(
        conn, opts={"include_schemas": True, "include_name": ours, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("service", SERVICES)
async def test_migrated_schema_is_the_models(database_url: str, service: str) -> None:
    metadata: MetaData = importlib.import_module(f"services.{service}.models").metadata
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(_differences, metadata)
    finally:
        await engine.dispose()
    assert found == []
