"""Tables of the segmenter, in its own `segmenter` schema."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, func

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

outbox = outbox_table(metadata)
