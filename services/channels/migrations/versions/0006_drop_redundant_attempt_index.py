"""drop the send attempts' index on profile_id alone

`ix_send_attempts_caps` (profile_id, decided_at) answers every lookup by customer (the caps'
count, the message log per customer) as well, so the single-column index only cost an entry
for every row version an attempt writes: two or three a message.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(
        "ix_channels_send_attempts_profile_id", table_name="send_attempts", schema="channels"
    )


def downgrade() -> None:
    op.create_index(
        "ix_channels_send_attempts_profile_id",
        "send_attempts",
        ["profile_id"],
        schema="channels",
    )
