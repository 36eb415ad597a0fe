"""drop ix_journey_instances_waiting: no query filters on waiting_event

An event loads every live instance of its customers (exits, goals and waits are all decided in
the engine), which the index on profile_id serves. The (profile_id, waiting_event) index was
never chosen for it, cost a write per instance change, and kept updates that move an instance
into or out of a wait from being HOT updates.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_journey_instances_waiting", table_name="instances", schema="journey")


def downgrade() -> None:
    op.create_index(
        "ix_journey_instances_waiting",
        "instances",
        ["profile_id", "waiting_event"],
        schema="journey",
    )
