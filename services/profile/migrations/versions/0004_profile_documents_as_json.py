"""store the profile's behaviour, consent and internal state as json, not jsonb

They are rewritten with every event and only ever read whole (no SQL looks inside them; the
trait search reads `traits`, which stays jsonb). jsonb took ~165 bytes more per profile (its
binary form keeps an offset per key and value): enough to hold four profile rows to a page
instead of five. json only validates the text, which is also cheaper to write.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

COLUMNS = ("behaviour", "consent", "internal")


def _retype(kind: str) -> None:
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {kind} USING {c}::text::{kind}" for c in COLUMNS)
    op.execute(f"ALTER TABLE profile.profiles {changes}")
    op.execute(f"ALTER TABLE profile.profiles ALTER COLUMN internal SET DEFAULT '{{}}'::{kind}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
