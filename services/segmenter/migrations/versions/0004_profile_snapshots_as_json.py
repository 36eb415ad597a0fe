"""store the segmenter's profile snapshots as json, not jsonb

The segmenter only ever reads a snapshot whole: to decide, and to copy it into change records.
No query looks inside it. The RFM recompute copies a million of them into its outbox rows as
text, and jsonb had to be serialised back to text for every one (that insert: 9.4 → 7.9 s on
a million customers). json keeps the text as written and only validates it. This rewrites the
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
    op.execute(
        "ALTER TABLE segmenter.profiles ALTER COLUMN snapshot TYPE json USING snapshot::json"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE segmenter.profiles ALTER COLUMN snapshot TYPE jsonb USING snapshot::jsonb"
    )
