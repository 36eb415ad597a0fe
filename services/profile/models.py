"""Tables of the profile service, in its own `profile` schema."""

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
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID

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
    # json, not jsonb: rewritten with every event, only ever read whole (migration 0004)
    Column("behaviour", JSON, nullable=False),
    Column("consent", JSON, nullable=False),
    Column(
        "internal",
        JSON,
        nullable=False,
        server_default="{}",
        comment="trait change times, visit days, cart bookkeeping; never published",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

identities = Table(
    "identities",
    metadata,
    Column("identity", String, primary_key=True, comment="kind:value, e.g. user:42, anon:abc"),
    # uuid, not text: 21 bytes less in each row and index entry (migration 0005)
    Column("profile_id", UUID(as_uuid=False), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

merged_profiles = Table(
    "merged_profiles",
    metadata,
    Column("profile_id", String, primary_key=True, comment="the id that disappeared"),
    Column("merged_into", String, nullable=False, index=True),
    Column("merged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consent_history = Table(
    "consent_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("profile_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("message_type", String, nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("source", String, nullable=False, comment="identify, api, unsubscribe-link, ..."),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_consent_history_profile", "profile_id", "id"),
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
    Index("ix_timeline_profile_time_message", "profile_id", "timestamp", "message_id"),
    Index(
        "ix_timeline_measured_events",
        "event",
        "timestamp",
        postgresql_where=text(
            "event IN ('Order Completed', 'Order Refunded', 'Referral', 'Survey Responded')"
        ),
    ),  # measurement (migration 0003)
)

outbox = outbox_table(metadata)
