"""store the contact snapshot as json, not jsonb

The projection of `jm.profiles` is written on every profile version and on every dispatch that
carries one, and only ever read whole. Parsing it into jsonb was about 40% of the upsert (60 of
140 µs a row for a 2 KB snapshot, measured); json only validates the text. This rewrites the
table under an exclusive lock: on a large base, run it in a quiet hour.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE channels.contacts ALTER COLUMN snapshot TYPE json USING snapshot::json")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE channels.contacts ALTER COLUMN snapshot TYPE jsonb USING snapshot::jsonb"
    )
