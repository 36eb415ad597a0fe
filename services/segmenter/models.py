"""Tables of the segmenter, in its own `segmenter` schema.

The segmenter keeps just enough to decide segments without asking anyone: the latest snapshot
of each profile (timers and previews evaluate against it), compact event facts for the events
some definition references (pruned beyond the longest window), a purchase summary for RFM, and
the next moment each time-dependent membership can change.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.outbox import outbox_table

metadata = MetaData(schema="segmenter")

memberships = Table(
    "memberships",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("segment_id", String, primary_key=True, index=True),
    Column("profile_version", BigInteger, nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("version", BigInteger, nullable=False, comment="last applied profile version"),
    Column("snapshot", JSON, nullable=False),
)

facts = Table(
    "facts",
    metadata,
    Column("profile_id", String, nullable=False),
    Column("event", String, nullable=False),
    Column("property", String, nullable=False, comment="'' marks the occurrence itself"),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("value", Double),
    Index("ix_segmenter_facts_profile", "profile_id", "event", "at"),
)

segment_timers = Table(
    "segment_timers",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("segment_id", String, primary_key=True),
    Column("due_at", DateTime(timezone=True), nullable=False, index=True),
)

membership_history = Table(
    "membership_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("profile_id", String, nullable=False),
    Column("segment_id", String, nullable=False),
    Column("change", String, nullable=False),
    Column("profile_version", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_segmenter_membership_history_profile", "profile_id", "at"),
)

purchases = Table(
    "purchases",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("last_order_at", DateTime(timezone=True), nullable=False),
    Column("orders_count", Integer, nullable=False),
    Column("monetary", Double, nullable=False),
)

rfm_scores = Table(
    "rfm_scores",
    metadata,
    Column("profile_id", String, primary_key=True),
    Column("recency", Integer, nullable=False),
    Column("frequency", Integer, nullable=False),
    Column("monetary", Integer, nullable=False),
    Column("segment_id", String),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

definitions = Table(
    "definitions",
    metadata,
    Column("segment_id", String, primary_key=True),
    Column("source", String, nullable=False, comment="file path, or 'api'"),
    Column("body", JSONB, nullable=False, comment="the last accepted definition"),
    Column("enabled_override", Boolean, comment="set by ops (enable/disable); null: the file's"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
