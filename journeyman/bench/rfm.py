"""`journeyman bench rfm`: a full RFM recompute over a large base, beside the raw baseline.

On a fresh embedded PostgreSQL (migrated), N customers are seeded set-based as the segmenter
holds them after a long history: a profile snapshot and a purchase summary each. Then:

- baseline: the physical floor of the job, one pass that reads every purchase summary and
  writes the three `ntile(5)` scores of each customer into a table (no comparison, no changes);
- first run: `services.segmenter.rfm_service.recompute_rfm` with the segmenter's default
  lanes, as its clock runs it: everyone lands in a segment, so every customer gets a membership,
  a history row and a Segment Entered record in the outbox;
- second run: the same recompute on the unchanged base, which finds no change.

No broker is needed: the recompute ends when its transactions (outbox rows included) commit;
publishing those rows is the relay's work, measured by the segmenter benchmark.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

from journeyman.bench.common import asyncpg_dsn, report
from journeyman.bench.segmenter import seed_profiles, seed_purchases
from journeyman.embedded import EmbeddedPostgres
from services.segmenter.rfm import RfmConfig
from services.segmenter.rfm_service import recompute_rfm
from services.segmenter.settings import SegmenterSettings
from shared.db import create_engine
from shared.migrations import upgrade
from shared.settings import Settings

SIZES = {"small": 100_000, "default": 1_000_000, "large": 3_000_000}


async def _baseline(dsn: str) -> float:
    """Seconds to score the whole base in one statement, written to a scratch table."""
    db = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await db.execute(
            "CREATE UNLOGGED TABLE public.bench_rfm_raw AS SELECT profile_id,"
            " ntile(5) OVER (ORDER BY last_order_at, profile_id) AS r,"
            " ntile(5) OVER (ORDER BY orders_count, profile_id) AS f,"
            " ntile(5) OVER (ORDER BY monetary, profile_id) AS m FROM segmenter.purchases"
        )
        elapsed = time.perf_counter() - started
        await db.execute("DROP TABLE public.bench_rfm_raw")
        return elapsed
    finally:
        await db.close()


async def _recompute(url: str, config: RfmConfig) -> tuple[float, dict[str, int]]:
    engine = create_engine(Settings(database_url=url, service_name="bench-rfm"))
    try:
        lanes = SegmenterSettings.model_fields["segmenter_rfm_lanes"].default
        started = time.perf_counter()
        figures = await recompute_rfm(engine, config, datetime.now(UTC), lanes)
        return time.perf_counter() - started, figures
    finally:
        await engine.dispose()


async def measure(url: str, customers: int, console: Console) -> dict[str, Any]:
    dsn = asyncpg_dsn(url)
    t0 = time.perf_counter()
    await seed_profiles(dsn, "rfm", customers)
    await seed_purchases(dsn, "rfm", customers)
    console.print(f"seeded {customers:,} customers in {time.perf_counter() - t0:.1f} s")
    baseline_s = await _baseline(dsn)
    config = RfmConfig()
    first_s, first = await _recompute(url, config)
    second_s, second = await _recompute(url, config)
    return {
        "benchmark": "rfm",
        "customers": customers,
        "baseline_score_s": round(baseline_s, 2),
        "rfm_first_run_s": round(first_s, 2),
        "rfm_first_run_changes": first["entered"] + first["exited"],
        "rfm_second_run_s": round(second_s, 2),
        "rfm_second_run_changes": second["entered"] + second["exited"],
        "rfm_profiles_scored": first["profiles"],
        "ratio_to_baseline_first_run": round(baseline_s / first_s, 3) if first_s else 0.0,
    }


def run(size: str, json_path: Path | None, console: Console) -> None:
    if size not in SIZES:
        raise ValueError(f"size: one of {', '.join(SIZES)}")
    with (
        tempfile.TemporaryDirectory(prefix="jm-bench-rfm-") as tmp,
        EmbeddedPostgres(Path(tmp) / "postgres") as pg,
    ):
        upgrade(pg.url)
        console.print(f"RFM benchmark: {SIZES[size]:,} customers")
        figures = asyncio.run(measure(pg.url, SIZES[size], console))
    rows = [
        ("customers scored", f"{figures['rfm_profiles_scored']:,}"),
        ("baseline: score the base into a table, s", float(figures["baseline_score_s"])),
        ("RFM recompute, first run s", float(figures["rfm_first_run_s"])),
        ("  changes written (memberships, history, outbox)", figures["rfm_first_run_changes"]),
        ("RFM recompute, second run (no change) s", float(figures["rfm_second_run_s"])),
        ("  changes written", figures["rfm_second_run_changes"]),
    ]
    report(console, f"RFM recompute ({size})", rows, figures, json_path)
