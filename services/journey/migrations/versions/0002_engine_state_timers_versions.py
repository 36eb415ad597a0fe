"""engine state, durable timers, stored versions, projections, counters, webhook calls

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

S = "journey"
NOW = sa.text("now()")


def _ts(name: str, nullable: bool = True, default: bool = False) -> sa.Column[datetime]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if default else None
    )


def upgrade() -> None:
    op.add_column(
        "instances",
        sa.Column(
            "grp", sa.String(), server_default="treatment", nullable=False, comment="or holdout"
        ),
        schema=S,
    )
    op.add_column(
        "instances",
        sa.Column(
            "waiting_event",
            sa.String(),
            nullable=True,
            comment="event a wait_for_event step waits for",
        ),
        schema=S,
    )
    op.add_column("instances", _ts("entered_at", nullable=False, default=True), schema=S)
    op.add_column(
        "instances",
        sa.Column(
            "goal_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="end of the conversion window",
        ),
        schema=S,
    )
    op.add_column("instances", _ts("converted_at"), schema=S)
    op.add_column("instances", _ts("ended_at"), schema=S)
    op.add_column(
        "instances",
        sa.Column(
            "state",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
            comment="engine state document",
        ),
        schema=S,
    )
    op.create_index(
        "ix_journey_instances_waiting", "instances", ["profile_id", "waiting_event"], schema=S
    )
    op.create_index(
        "ix_journey_instances_journey_status",
        "instances",
        ["journey_id", "status", "current_step"],
        schema=S,
    )

    op.create_table(
        "definitions",
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "definition",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the validated journey as JSON",
        ),
        sa.Column(
            "source", sa.Text(), nullable=True, comment="file or API body it was published from"
        ),
        _ts("published_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("journey_id", "version"),
        schema=S,
    )
    op.create_table(
        "journeys",
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False, comment="active, paused, archived"),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        _ts("updated_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("journey_id"),
        schema=S,
    )
    op.create_table(
        "timers",
        sa.Column("timer_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False, comment="step, date, schedule"),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=True),
        sa.Column("profile_id", sa.String(), nullable=True),
        sa.Column("token", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("timer_id"),
        schema=S,
    )
    op.create_index("ix_journey_timers_due_at", "timers", ["due_at"], schema=S)
    op.create_index("ix_journey_timers_profile_id", "timers", ["profile_id"], schema=S)
    op.create_table(
        "entries",
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("last_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("times", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "profile_id"),
        schema=S,
    )
    op.create_index("ix_journey_entries_profile", "entries", ["profile_id"], schema=S)
    op.create_table(
        "memberships",
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("segment_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", "segment_id"),
        schema=S,
    )
    op.create_index("ix_journey_memberships_segment", "memberships", ["segment_id"], schema=S)
    op.create_table(
        "profiles",
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("profile_id"),
        schema=S,
    )
    op.create_table(
        "seen_messages",
        sa.Column("message_id", sa.String(), nullable=False),
        _ts("seen_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("message_id"),
        schema=S,
    )
    op.create_index("ix_journey_seen_messages_seen_at", "seen_messages", ["seen_at"], schema=S)
    op.create_table(
        "counters",
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False, comment="'' for journey-wide counters"),
        sa.Column(
            "metric", sa.String(), nullable=False, comment="entered, exited, converted, branch"
        ),
        sa.Column("label", sa.String(), nullable=False, comment="branch label or group"),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "version", "step_id", "metric", "label"),
        schema=S,
    )
    op.create_table(
        "webhook_calls",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "status", sa.String(), nullable=False, comment="pending, calling, done, failed, unknown"
        ),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("call_id"),
        schema=S,
    )
    op.create_index("ix_journey_webhook_calls_status", "webhook_calls", ["status"], schema=S)


def downgrade() -> None:
    for table in ("webhook_calls", "counters", "seen_messages", "profiles", "memberships",
                  "entries", "timers", "journeys", "definitions"):  # fmt: skip
        op.drop_table(table, schema=S)
    op.drop_index("ix_journey_instances_journey_status", table_name="instances", schema=S)
    op.drop_index("ix_journey_instances_waiting", table_name="instances", schema=S)
    for column in ("state", "ended_at", "converted_at", "goal_until", "entered_at",
                   "waiting_event", "grp"):  # fmt: skip
        op.drop_column("instances", column, schema=S)
