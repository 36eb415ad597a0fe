"""Tables of the journey service, in its own `journey` schema."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func

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
)

outbox = outbox_table(metadata)
