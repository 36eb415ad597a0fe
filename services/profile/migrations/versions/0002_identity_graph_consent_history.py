"""identity graph, merges, consent history, timeline cursor index

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "profiles",
        sa.Column(
            "internal",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
            comment="trait change times, visit days, cart bookkeeping; never published",
        ),
        schema="profile",
    )
    op.add_column(
        "identities",
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        schema="profile",
    )  # fmt: skip
    op.create_table(
        "merged_profiles",
        sa.Column("profile_id", sa.String(), nullable=False, comment="the id that disappeared"),
        sa.Column("merged_into", sa.String(), nullable=False),
        sa.Column(
            "merged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("profile_id"),
        schema="profile",
    )  # fmt: skip
    op.create_index(
        op.f("ix_profile_merged_profiles_merged_into"),
        "merged_profiles",
        ["merged_into"],
        schema="profile",
    )
    op.create_table(
        "consent_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("profile_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("message_type", sa.String(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column(
            "source", sa.String(), nullable=False, comment="identify, api, unsubscribe-link, ..."
        ),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="profile",
    )  # fmt: skip
    op.create_index(
        "ix_consent_history_profile", "consent_history", ["profile_id", "id"], schema="profile"
    )
    op.drop_index("ix_timeline_profile_time", table_name="timeline", schema="profile")
    op.create_index(
        "ix_timeline_profile_time_message",
        "timeline",
        ["profile_id", "timestamp", "message_id"],
        schema="profile",
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_profile_time_message", table_name="timeline", schema="profile")
    op.create_index(
        "ix_timeline_profile_time", "timeline", ["profile_id", "timestamp"], schema="profile"
    )
    op.drop_index("ix_consent_history_profile", table_name="consent_history", schema="profile")
    op.drop_table("consent_history", schema="profile")
    op.drop_index(
        op.f("ix_profile_merged_profiles_merged_into"),
        table_name="merged_profiles",
        schema="profile",
    )
    op.drop_table("merged_profiles", schema="profile")
    op.drop_column("identities", "created_at", schema="profile")
    op.drop_column("profiles", "internal", schema="profile")
