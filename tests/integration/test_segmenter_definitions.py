"""A definition file that fails validation is refused with its file and line, and changes
nothing that runs: the segmenter keeps deciding the last accepted version of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.segmenter.app import create_app
from services.segmenter.registry import Registry
from services.segmenter.settings import SegmenterSettings
from shared.clock import ManualClock
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS, SEGMENT_CHANGES
from tests.helpers import TopicReader, produce, running

pytestmark = pytest.mark.integration
OPS = {"Authorization": "Bearer ops-read"}
NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)

GOOD = """id: regulars
name: Regulars
where:
  aggregate: count
  event: Order Completed
  within_days: 30
  value: 2
"""
BROKEN = """id: regulars
name: Regulars
where:
  aggregate: count
  event: Order Completed
  within_days: thirty
  value: 1
"""


def _order(pid: str, version: int) -> bytes:
    at = (NOW - timedelta(days=version)).isoformat()
    return orjson.dumps(
        {"event": {"type": "track", "event": "Order Completed", "messageId": f"{pid}-{version}",
                   "userId": pid, "timestamp": at, "properties": {"revenue": 10}},
         "profile": {"profile_id": pid, "version": version, "updated_at": at,
                     "behaviour": {"orders_count": version}}}
    )  # fmt: skip


async def test_a_refused_file_keeps_the_last_accepted_version_running(
    settings: Settings, tmp_path: Path
) -> None:
    directory = tmp_path / "segments"
    directory.mkdir()
    config = SegmenterSettings.model_validate(
        settings.model_dump() | {"segments_dir": str(directory), "segmenter_clock_interval_s": 0.05}
    )
    (directory / "regulars.yaml").write_text(GOOD)
    clock = ManualClock(NOW)
    # A first start accepts the good file (what the app does before its first batch).
    engine = create_async_engine(config.database_url)
    registry = Registry(directory)
    registry.load_files()
    async with engine.begin() as conn:
        await registry.sync(conn)
    await engine.dispose()
    assert [s.id for s in registry.catalog.ordered] == ["regulars"]

    (directory / "regulars.yaml").write_text(BROKEN)
    pid = f"r-{uuid.uuid4().hex[:8]}"
    async with TopicReader(config, SEGMENT_CHANGES) as topic, running(
        create_app(config, clock)
    ) as client:  # fmt: skip
        listed = (await client.get("/v1/segments", headers=OPS)).json()
        assert len(listed["refused"]) == 1
        assert listed["refused"][0].startswith(
            f"{directory / 'regulars.yaml'}:6: where.within_days"
        )
        await produce(config, PROFILE_EVENTS, [_order(pid, 1)], key=pid.encode())
        await produce(config, PROFILE_EVENTS, [_order(pid, 2)], key=pid.encode())
        # The old definition (2 orders) decides, not the broken edit (1 order).
        (change,) = [orjson.loads(r.value) for r in await topic.read(1)]  # type: ignore[attr-defined]
        assert (change["segment_id"], change["change"], change["profile"]["version"]) == (
            "regulars", "entered", 2,
        )  # fmt: skip
        listed = (await client.get("/v1/segments", headers=OPS)).json()
        assert [(s["id"], s["size"]) for s in listed["segments"] if s["kind"] == "definition"] == [
            ("regulars", 1)
        ]
