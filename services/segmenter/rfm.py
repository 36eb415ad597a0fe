"""RFM: recency, frequency and monetary scores (1-5 quintiles over the whole base) and the named
segments they map to. Boundaries are configurable in `segments/rfm.yaml`; the first named
segment whose ranges contain a customer's scores wins, so order the list from the most specific.

Scores are computed set-based in SQL (`rfm_repository.py`): `ntile(5)` over every customer with
at least one order, oldest last order → R 1, most recent → R 5; fewest orders → F 1; least
spent → M 1. Ties at a quintile boundary are split by profile id, as `ntile` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.yamldoc import DefinitionError, load_yaml, validate_doc

Score = Annotated[int, Field(ge=1, le=5)]
PREFIX = "rfm-"


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Score = 1
    max: Score = 5

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class RfmSegment(BaseModel):
    """A named RFM segment: published as `rfm-<id>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str
    recency: Range = Range()
    frequency: Range = Range()
    monetary: Range = Range()

    @property
    def segment_id(self) -> str:
        return PREFIX + self.id


def _r(lo: int, hi: int) -> Range:
    return Range(min=lo, max=hi)


DEFAULT_SEGMENTS = (
    RfmSegment(id="champions", name="Champions", recency=_r(4, 5), frequency=_r(4, 5),
               monetary=_r(4, 5)),
    RfmSegment(id="cant-lose", name="Can't lose them", recency=_r(1, 1), frequency=_r(5, 5),
               monetary=_r(4, 5)),
    RfmSegment(id="loyal", name="Loyal", recency=_r(3, 5), frequency=_r(4, 5)),
    RfmSegment(id="at-risk", name="At risk", recency=_r(1, 2), frequency=_r(3, 5)),
    RfmSegment(id="potential-loyalists", name="Potential loyalists", recency=_r(4, 5),
               frequency=_r(2, 3)),
    RfmSegment(id="new-customers", name="New customers", recency=_r(5, 5), frequency=_r(1, 1)),
    RfmSegment(id="promising", name="Promising", recency=_r(4, 4), frequency=_r(1, 1)),
    RfmSegment(id="need-attention", name="Need attention", recency=_r(3, 3), frequency=_r(2, 3)),
    RfmSegment(id="about-to-sleep", name="About to sleep", recency=_r(2, 3), frequency=_r(1, 2)),
    RfmSegment(id="hibernating", name="Hibernating", recency=_r(1, 2), frequency=_r(1, 2)),
)  # fmt: skip


class RfmConfig(BaseModel):
    """`segments/rfm.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    segments: Annotated[list[RfmSegment], Field(min_length=1)] = list(DEFAULT_SEGMENTS)

    @model_validator(mode="after")
    def _unique(self) -> RfmConfig:
        ids = [s.id for s in self.segments]
        if len(ids) != len(set(ids)):
            raise ValueError("segment ids must be unique")
        return self

    def segment_ids(self) -> list[str]:
        return [s.segment_id for s in self.segments]

    def name_of(self, r: int, f: int, m: int) -> str | None:
        """The pure twin of the SQL CASE: the first segment containing (r, f, m)."""
        for s in self.segments:
            ranges = ((s.recency, r), (s.frequency, f), (s.monetary, m))
            if all(rng.min <= v <= rng.max for rng, v in ranges):
                return s.segment_id
        return None


def load_rfm(path: Path) -> tuple[RfmConfig | None, DefinitionError | None]:
    """The configured boundaries (defaults without a file); None with the error when the file
    is refused: scoring then pauses, so a broken edit changes no customer's RFM segment."""
    if not path.is_file():
        return RfmConfig(), None
    try:
        return validate_doc(load_yaml(path), RfmConfig), None
    except DefinitionError as exc:
        return None, exc
