"""the sweeper's and the unknown report's partial indexes, declared in the models but never
created by a migration (the migrations-match-models test found them)

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

S = "channels"


def upgrade() -> None:
    op.create_index(
        "ix_send_attempts_sending", "send_attempts", ["claimed_at"], schema=S,
        postgresql_where=sa.text("status = 'sending'"),
    )  # fmt: skip
    op.create_index(
        "ix_send_attempts_unknown", "send_attempts", ["claimed_at"], schema=S,
        postgresql_where=sa.text("was_unknown"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_send_attempts_unknown", table_name="send_attempts", schema=S)
    op.drop_index("ix_send_attempts_sending", table_name="send_attempts", schema=S)
