"""The benchmarks' checkpoint watch, on the real database: it says yes when a checkpoint ran
during the watched block, no when none did, and unknown on a server that cannot say."""

from __future__ import annotations

import asyncpg
import pytest

from journeyman.bench.common import asyncpg_dsn, checkpoint_watch

pytestmark = pytest.mark.integration


async def test_a_checkpoint_in_the_block_is_seen_and_none_is_not(database_url: str) -> None:
    dsn = asyncpg_dsn(database_url)
    db = await asyncpg.connect(dsn)
    try:
        says = int(await db.fetchval("SHOW server_version_num")) >= 180_000  # num_done
        await db.execute("CHECKPOINT")  # none left running from before the first block
        async with checkpoint_watch(dsn) as quiet:
            await db.execute("SELECT 1")
        async with checkpoint_watch(dsn) as busy:
            await db.execute("CHECKPOINT")
    finally:
        await db.close()
    if says:
        assert (quiet.overlapped, busy.overlapped) == (False, True)
        assert (str(quiet), str(busy)) == ("no", "yes")
    else:
        assert (quiet.overlapped, busy.overlapped) == (None, None)
        assert str(busy) == "unknown"
