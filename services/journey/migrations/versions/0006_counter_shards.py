"""counters in shards: concurrent batches no longer queue on one row

Every batch of the timer workers and of the consumer adds to the same few counter rows (a
journey's step entered, a message sent), and the upsert kept each row locked from that
statement to the commit, so two workers' batches waited on each other there (up to ~100 ms a
batch in the timer drain). A batch now adds to one of 16 shards of each counter, chosen
round-robin per transaction, and readers sum the shards (as they already summed versions).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_KEY = ["journey_id", "version", "step_id", "metric", "label"]


def upgrade() -> None:
    op.add_column(
        "counters",
        sa.Column(
            "shard",
            sa.SmallInteger(),
            nullable=False,
            server_default="0",
            comment="concurrent batches add to different rows; readers sum them",
        ),
        schema="journey",
    )
    op.drop_constraint("counters_pkey", "counters", schema="journey", type_="primary")
    op.create_primary_key("counters_pkey", "counters", [*_KEY, "shard"], schema="journey")


def downgrade() -> None:
    op.execute(
        "CREATE TEMPORARY TABLE folded AS SELECT journey_id, version, step_id, metric, label,"
        " sum(n) AS n FROM journey.counters GROUP BY 1, 2, 3, 4, 5"
    )
    op.execute("DELETE FROM journey.counters")
    op.drop_constraint("counters_pkey", "counters", schema="journey", type_="primary")
    op.drop_column("counters", "shard", schema="journey")
    op.create_primary_key("counters_pkey", "counters", _KEY, schema="journey")
    op.execute("INSERT INTO journey.counters SELECT * FROM folded")
    op.execute("DROP TABLE folded")
