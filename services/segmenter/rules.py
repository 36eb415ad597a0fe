"""The building blocks of a segment's `where:` tree, as typed models.

Each rule is a mapping named by the one key that says what it is (`aggregate`, `not_done`,
`did`, `days_since`, `anniversary`, `in_segment`, `cel`, `all`, `any`, `not`), so a marketer
reads a file top to bottom and the generated JSON Schema lets an editor offer the right fields.
The models only describe; `evaluation.py` decides and `catalog.py` indexes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from shared.cel_check import SEGMENT_VARIABLES, condition_checker

Op = Literal[">=", ">", "<=", "<", "==", "!="]
ProfilePath = Annotated[
    str,
    Field(
        pattern=r"^(traits|behaviour|consent)(\.[A-Za-z0-9_]+)+$",
        description="A field of the profile snapshot, e.g. behaviour.last_order_at",
    ),
]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CelRule(_Rule):
    """A CEL expression over `profile` (the snapshot), true or false."""

    cel: str = Field(description="e.g. profile.traits.country == 'FR'")

    _check = field_validator("cel")(condition_checker(SEGMENT_VARIABLES))


class AggregateRule(_Rule):
    """count / sum / avg / min / max of an event (property) within the last N days."""

    aggregate: Literal["count", "sum", "avg", "min", "max"]
    event: str = Field(description="Track event name, e.g. Order Completed")
    property: str | None = Field(
        default=None, description="Numeric property (needed for sum/avg/min/max), e.g. revenue"
    )
    within_days: Annotated[int, Field(gt=0, le=3660)]
    op: Op = ">="
    value: float

    @field_validator("property")
    @classmethod
    def _simple_name(cls, prop: str | None) -> str | None:
        if prop is not None and not prop.strip():
            raise ValueError("property must not be empty")
        return prop

    @model_validator(mode="after")
    def _needs_property(self) -> AggregateRule:
        if self.aggregate != "count" and self.property is None:
            raise ValueError(f"`{self.aggregate}` needs a `property` to aggregate")
        return self


class NotDoneRule(_Rule):
    """Has not done the event for N days (true as well for someone who never did it)."""

    not_done: str = Field(description="Track event name")
    for_days: Annotated[int, Field(gt=0, le=3660)]


class SequenceRule(_Rule):
    """Did X, then not Y within H hours (the latest X within `lookback_days` counts)."""

    did: str = Field(description="Track event name, e.g. Checkout Started")
    then_not: str = Field(description="Track event name, e.g. Order Completed")
    within_hours: Annotated[float, Field(gt=0, le=24 * 366)]
    lookback_days: Annotated[int, Field(gt=0, le=3660)] = 30


class DaysSinceRule(_Rule):
    """Days elapsed since a date-time field of the profile, compared with a value."""

    days_since: ProfilePath
    op: Op = ">="
    value: float


class AnniversaryRule(_Rule):
    """Today is the anniversary (month and day) of a date field, e.g. a birthday, in the
    customer's `traits.timezone` when it names a valid zone, UTC otherwise."""

    anniversary: ProfilePath


class InSegmentRule(_Rule):
    """Member of another segment (definitions may not refer to each other in a cycle)."""

    in_segment: str


class AllRule(_Rule):
    all: Annotated[list[Rule], Field(min_length=1)]


class AnyRule(_Rule):
    any: Annotated[list[Rule], Field(min_length=1)]


class NotRule(_Rule):
    not_: Rule = Field(alias="not")


_TAGS = (
    "cel", "aggregate", "not_done", "did", "days_since", "anniversary", "in_segment", "all",
    "any", "not",
)  # fmt: skip


def _tag(value: Any) -> str | None:
    """The rule's kind: the first key that names one. Tags are `<key> rule`, never a key of
    the file, so an error's location points at the offending field, not at the rule's key."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, dict):
        for key in _TAGS:
            if key in value:
                return f"{key} rule"
    return None


Rule = Annotated[
    Annotated[CelRule, Tag("cel rule")]
    | Annotated[AggregateRule, Tag("aggregate rule")]
    | Annotated[NotDoneRule, Tag("not_done rule")]
    | Annotated[SequenceRule, Tag("did rule")]
    | Annotated[DaysSinceRule, Tag("days_since rule")]
    | Annotated[AnniversaryRule, Tag("anniversary rule")]
    | Annotated[InSegmentRule, Tag("in_segment rule")]
    | Annotated[AllRule, Tag("all rule")]
    | Annotated[AnyRule, Tag("any rule")]
    | Annotated[NotRule, Tag("not rule")],
    Discriminator(
        _tag,
        custom_error_type="unknown_rule",
        custom_error_message=f"a rule needs one of the keys {', '.join(_TAGS)}",
    ),
]

AllRule.model_rebuild()
AnyRule.model_rebuild()
NotRule.model_rebuild()
