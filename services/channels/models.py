"""Tables of the channels service, in its own `channels` schema."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from shared.outbox import outbox_table

metadata = MetaData(schema="channels")

contacts = Table(
    "contacts",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("snapshot", JSONB, nullable=False, comment="latest profile seen on jm.profiles"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

send_attempts = Table(
    "send_attempts",
    metadata,
    Column("dispatch_id", String, primary_key=True),
    Column("profile_id", String, nullable=False, index=True),
    Column("channel", String, nullable=False),
    Column("message_type", String, nullable=False),
    Column("template", String, nullable=False),
    Column("journey_id", String, nullable=False),
    Column("step_id", String, nullable=False),
    Column("status", String, nullable=False, comment="sending, sent, suppressed, failed, unknown"),
    Column("reason", String),
    Column("address", String),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("request", JSONB, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
)

outbox = outbox_table(metadata)
