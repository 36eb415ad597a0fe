"""timeline index for measurement: the events the KPIs and satisfaction scores read

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

MEASURED = "event IN ('Order Completed', 'Order Refunded', 'Referral', 'Survey Responded')"


def upgrade() -> None:
    # Partial: only the few measured events are indexed, so the consumer's inserts of every
    # other event pay nothing for it.
    op.create_index(
        "ix_timeline_measured_events", "timeline", ["event", "timestamp"], unique=False,
        schema="profile", postgresql_where=sa.text(MEASURED),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_timeline_measured_events", table_name="timeline", schema="profile")
