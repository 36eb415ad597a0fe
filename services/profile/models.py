"""Tables of the profile service, in its own `profile` schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.outbox import outbox_table

metadata = MetaData(schema="profile")

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("user_id", String),
    Column("anonymous_id", String),
    Column("version", BigInteger, nullable=False),
    Column("traits", JSONB, nullable=False),
    Column("behaviour", JSONB, nullable=False),
    Column("consent", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

identities = Table(
    "identities",
    metadata,
    Column("identity", String, primary_key=True, comment="kind:value, e.g. user:42, anon:abc"),
    Column("profile_id", String, nullable=False, index=True),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    Column("message_id", String, primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

timeline = Table(
    "timeline",
    metadata,
    Column("profile_id", String, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("message_id", String, nullable=False),
    Column("type", String, nullable=False),
    Column("event", String),
    Column("payload", JSONB, nullable=False),
    Column("seq", Integer, nullable=False, server_default="0"),
    Index("ix_timeline_profile_time", "profile_id", "timestamp"),
)

outbox = outbox_table(metadata)
