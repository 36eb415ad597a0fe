"""send policy, deferred sends, message log, feedback, suppressions

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None
S = "channels"


def upgrade() -> None:
    op.add_column(
        "send_attempts",
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        schema=S,
    )
    op.add_column(
        "send_attempts",
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="policy clock time of the last decision",
        ),
        schema=S,
    )
    op.add_column(
        "send_attempts", sa.Column("provider_message_id", sa.String(), nullable=True), schema=S
    )
    op.add_column(
        "send_attempts",
        sa.Column("was_unknown", sa.Boolean(), server_default="false", nullable=False),
        schema=S,
    )
    op.create_index(
        "ix_send_attempts_caps", "send_attempts", ["profile_id", "decided_at"], schema=S
    )
    op.create_index(
        "ix_send_attempts_journey", "send_attempts", ["journey_id", "decided_at"], schema=S
    )
    op.create_index(
        op.f("ix_channels_send_attempts_provider_message_id"),
        "send_attempts",
        ["provider_message_id"],
        schema=S,
    )
    op.create_table(
        "deferred",
        sa.Column("dispatch_id", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("dispatch_id"),
        schema=S,
    )
    op.create_index(op.f("ix_channels_deferred_due_at"), "deferred", ["due_at"], schema=S)
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dispatch_id", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("message_type", sa.String(), nullable=False),
        sa.Column(
            "decision", sa.String(), nullable=False, comment="send, suppressed, deferred, sent, ..."
        ),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=S,
    )
    for column in ("dispatch_id", "profile_id", "journey_id"):
        op.create_index(op.f(f"ix_channels_decisions_{column}"), "decisions", [column], schema=S)
    op.create_table(
        "message_events",
        sa.Column("dispatch_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False, comment="delivered, opened, clicked, ..."),
        sa.Column(
            "detail", sa.String(), server_default="", nullable=False, comment="url of a click"
        ),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dispatch_id", "kind", "detail"),
        schema=S,
    )
    op.create_index(
        "ix_message_events_journey", "message_events", ["journey_id", "first_at"], schema=S
    )
    op.create_table(
        "suppressions",
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False, comment="lower-cased"),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("channel", "address"),
        schema=S,
    )
    op.create_table(
        "optouts",
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("message_type", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", "channel", "message_type"),
        schema=S,
    )
    op.alter_column(
        "send_attempts",
        "status",
        comment="sending, sent, suppressed, deferred, failed, unknown",
        existing_type=sa.String(),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("optouts", schema=S)
    op.drop_table("suppressions", schema=S)
    op.drop_table("message_events", schema=S)
    op.drop_table("decisions", schema=S)
    op.drop_table("deferred", schema=S)
    op.drop_index(
        op.f("ix_channels_send_attempts_provider_message_id"), table_name="send_attempts", schema=S
    )
    op.drop_index("ix_send_attempts_journey", table_name="send_attempts", schema=S)
    op.drop_index("ix_send_attempts_caps", table_name="send_attempts", schema=S)
    for column in ("was_unknown", "provider_message_id", "decided_at", "priority"):
        op.drop_column("send_attempts", column, schema=S)
