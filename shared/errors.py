"""Which failures are worth waiting out (the database or broker is away) and which mean the
record itself is bad. Retrying the first kind forever is right; retrying the second never is."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from sqlalchemy import exc as sa_exc

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A replica started before `journeyman migrate` finished: wait for the schema, don't
    # dead-letter every record meanwhile.
    asyncpg.exceptions.UndefinedTableError,
    asyncpg.exceptions.InvalidSchemaNameError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the same work may succeed later unchanged."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return exc.orig is not None and is_transient(exc.orig)
    cause = exc.__cause__
    return isinstance(exc, _TRANSIENT) or (cause is not None and is_transient(cause))
