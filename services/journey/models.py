"""Tables of the journey service, in its own `journey` schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB

from shared.outbox import outbox_table

metadata = MetaData(schema="journey")

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String, primary_key=True),
    Column("journey_id", String, nullable=False),
    Column("journey_version", Integer, nullable=False),
    Column("profile_id", String, nullable=False, index=True),
    Column("entry_key", String, nullable=False),
    Column("status", String, nullable=False, comment="active, completed, exited"),
    Column("current_step", String),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("grp", String, nullable=False, server_default="treatment", comment="or holdout"),
    Column("waiting_event", String, comment="event a wait_for_event step waits for"),
    Column("entered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("goal_until", DateTime(timezone=True), comment="end of the conversion window"),
    Column("converted_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    # json, not jsonb: written on every move, only ever read whole (migration 0004)
    Column("state", JSON, nullable=False, server_default="{}", comment="engine state document"),
    Index("ix_journey_instances_journey_status", "journey_id", "status", "current_step"),
)

definitions = Table(
    "definitions",
    metadata,
    Column("journey_id", String, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", JSONB, nullable=False, comment="the validated journey as JSON"),
    Column("source", Text, comment="file or API body it was published from"),
    Column("published_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

journeys = Table(
    "journeys",
    metadata,
    Column("journey_id", String, primary_key=True),
    Column("status", String, nullable=False, comment="active, paused, archived"),
    Column("latest_version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

timers = Table(
    "timers",
    metadata,
    Column("timer_id", String, primary_key=True),
    Column("kind", String, nullable=False, comment="step, date, schedule"),
    Column("due_at", DateTime(timezone=True), nullable=False, index=True),
    Column("journey_id", String, nullable=False),
    Column("instance_id", String),
    Column("profile_id", String, index=True),
    Column("token", String),
)

entries = Table(
    "entries",
    metadata,
    Column("journey_id", String, primary_key=True),
    Column("profile_id", String, primary_key=True),
    Column("last_entered_at", DateTime(timezone=True), nullable=False),
    Column("times", Integer, nullable=False, server_default="1"),
    Index("ix_journey_entries_profile", "profile_id"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("segment_id", String, primary_key=True),
    Index("ix_journey_memberships_segment", "segment_id"),
)

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("snapshot", JSON, nullable=False),  # json: written often, only read whole (0004)
)

seen_messages = Table(
    "seen_messages",
    metadata,
    Column("message_id", String, primary_key=True),
    Column(
        "seen_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    ),
)

counters = Table(
    "counters",
    metadata,
    Column("journey_id", String, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("step_id", String, primary_key=True, comment="'' for journey-wide counters"),
    Column("metric", String, primary_key=True, comment="entered, exited, converted, branch"),
    Column("label", String, primary_key=True, comment="branch label or group"),
    Column(
        "shard",
        SmallInteger,
        primary_key=True,
        server_default="0",
        comment="concurrent batches add to different rows; readers sum them",
    ),
    Column("n", BigInteger, nullable=False),
)

webhook_calls = Table(
    "webhook_calls",
    metadata,
    Column("call_id", String, primary_key=True),
    Column("instance_id", String, nullable=False),
    Column("journey_id", String, nullable=False),
    Column("step_id", String, nullable=False),
    Column("method", String, nullable=False),
    Column("url", Text, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("body", JSONB),
    Column(
        "status",
        String,
        nullable=False,
        comment="pending, calling, done, failed, unknown",
        index=True,
    ),
    Column("response_code", Integer),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
