"""The definitions that run: files that passed validation, the last accepted version of a file
that is now refused (a broken edit changes nothing that runs), definitions created through the
API, and the ops enable/disable switches. Stored in `segmenter.definitions`, so every replica
converges on the same set when it refreshes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import definitions_repository as store
from services.segmenter.catalog import Catalog
from services.segmenter.definitions import CompiledSegment, Segment, check_set, load_segments
from shared.yamldoc import DefinitionError

API = "api"


@dataclass
class Registry:
    directory: Path
    files: list[CompiledSegment] = field(default_factory=list)
    refused: list[DefinitionError] = field(default_factory=list)
    segments: list[CompiledSegment] = field(default_factory=list)
    enabled: dict[str, bool] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=lambda: Catalog([]))
    synced: bool = False

    def load_files(self) -> None:
        """Read and check the files (no database: a service starts while it is away)."""
        self.files, self.refused = load_segments(self.directory)
        self.segments, _ = check_set([(s, None) for s in self.files])
        self.enabled = {s.id: s.segment.enabled for s in self.segments}
        self.catalog = Catalog([s for s in self.segments if self.enabled[s.id]])

    async def sync(self, conn: AsyncConnection) -> None:
        """Keep the last accepted version of refused files, store the accepted ones, and read
        API definitions and switches. Runs once, before the first batch or clock pass."""
        refused_paths = {e.path for e in self.refused}
        stored = await store.all_definitions(conn)
        loaded = {s.id for s in self.files}
        kept = []
        for row in stored:
            if row.source in refused_paths and row.segment_id not in loaded:
                try:
                    kept.append(CompiledSegment.of(Segment.model_validate(row.body), row.source))
                except ValidationError:
                    continue
        self.files += kept
        await store.save_files(conn, self.files, keep={s.id for s in kept})
        await self.refresh(conn)
        self.synced = True

    async def refresh(self, conn: AsyncConnection) -> None:
        """Re-read API definitions and switches from the table; rebuild the catalog."""
        rows = await store.all_definitions(conn)
        api: list[CompiledSegment] = []
        for row in rows:
            if row.source == API:
                try:
                    api.append(CompiledSegment.of(Segment.model_validate(row.body), API))
                except ValidationError:
                    continue
        file_ids = {s.id for s in self.files}
        candidates = [(s, None) for s in self.files] + [
            (s, None) for s in api if s.id not in file_ids
        ]
        self.segments, _ = check_set(candidates)
        overrides = {r.segment_id: r.enabled_override for r in rows}
        self.enabled = {
            s.id: s.segment.enabled if overrides.get(s.id) is None else bool(overrides[s.id])
            for s in self.segments
        }
        self.catalog = Catalog([s for s in self.segments if self.enabled[s.id]])

    def get(self, segment_id: str) -> CompiledSegment | None:
        return next((s for s in self.segments if s.id == segment_id), None)
