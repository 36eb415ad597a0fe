"""keep identities' profile_id as a uuid, not text

A customer has about three identities (anonymous id, user id, email), each row and its
profile_id index entry holding the profile id: 16 bytes as a uuid, 37 as text. Measured
~90 bytes less per customer (665 -> 576 for identities and their indexes). Profile ids are
minted by the service as UUIDs, so every stored one converts.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE profile.identities ALTER COLUMN profile_id TYPE uuid USING profile_id::uuid"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE profile.identities ALTER COLUMN profile_id TYPE text USING profile_id::text"
    )
