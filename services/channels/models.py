"""Tables of the channels service, in its own `channels` schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB

from shared.outbox import outbox_table

metadata = MetaData(schema="channels")

contacts = Table(
    "contacts",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
    # json, not jsonb: written on every profile version, only ever read whole (migration 0004)
    Column("snapshot", JSON, nullable=False, comment="latest profile seen on jm.profiles"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

send_attempts = Table(
    "send_attempts",
    metadata,
    Column("dispatch_id", String, primary_key=True),
    Column("profile_id", String, nullable=False),  # led by ix_send_attempts_caps
    Column("channel", String, nullable=False),
    Column("message_type", String, nullable=False),
    Column("template", String, nullable=False),
    Column("journey_id", String, nullable=False),
    Column("step_id", String, nullable=False),
    Column(
        "status",
        String,
        nullable=False,
        comment="sending, sent, suppressed, deferred, failed, unknown",
    ),
    Column("reason", String),
    Column("address", String),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("request", JSONB, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("decided_at", DateTime(timezone=True), comment="policy clock time of the last decision"),
    Column("provider_message_id", String, index=True),
    Column("was_unknown", Boolean, nullable=False, server_default="false"),
    Index("ix_send_attempts_caps", "profile_id", "decided_at"),
    Index("ix_send_attempts_journey", "journey_id", "decided_at"),
    # the sweeper and the unknown report read only these few rows
    Index("ix_send_attempts_sending", "claimed_at", postgresql_where=text("status = 'sending'")),
    Index("ix_send_attempts_unknown", "claimed_at", postgresql_where=text("was_unknown")),
)

deferred = Table(
    "deferred",
    metadata,
    Column("dispatch_id", String, primary_key=True),
    Column("profile_id", String, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False, index=True),
    Column("reason", String, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("dispatch_id", String, nullable=False, index=True),
    Column("profile_id", String, nullable=False, index=True),
    Column("journey_id", String, nullable=False, index=True),
    Column("step_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("message_type", String, nullable=False),
    Column("decision", String, nullable=False, comment="send, suppressed, deferred, sent, ..."),
    Column("reason", String, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

message_events = Table(
    "message_events",
    metadata,
    Column("dispatch_id", String, primary_key=True),
    Column("kind", String, primary_key=True, comment="delivered, opened, clicked, ..."),
    Column("detail", String, primary_key=True, server_default="", comment="url of a click"),
    Column("channel", String, nullable=False),
    Column("journey_id", String, nullable=False),
    Column("step_id", String, nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Index("ix_message_events_journey", "journey_id", "first_at"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("channel", String, primary_key=True),
    Column("address", String, primary_key=True, comment="lower-cased"),
    Column("reason", String, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

optouts = Table(
    "optouts",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("channel", String, primary_key=True),
    Column("message_type", String, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
