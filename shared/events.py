"""The event envelope: Segment-spec messages, validated at every edge.

Field names are Segment's (camelCase on the wire) so an unchanged Segment or RudderStack client
works. `messageId` is the idempotency key of everything downstream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]


class _Envelope(BaseModel):
    """Fields every Segment message carries."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    message_id: NonEmpty = Field(alias="messageId")
    user_id: NonEmpty | None = Field(default=None, alias="userId")
    anonymous_id: NonEmpty | None = Field(default=None, alias="anonymousId")
    timestamp: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    sent_at: AwareDatetime | None = Field(default=None, alias="sentAt")
    received_at: AwareDatetime | None = Field(default=None, alias="receivedAt")

    @field_validator("user_id", "anonymous_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        """Segment clients send numeric ids as numbers; they are identities all the same."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("timestamp", "sent_at", "received_at", mode="before")
    @classmethod
    def _naive_is_utc(cls, value: Any) -> Any:
        """A timestamp without an offset is read as UTC, as Segment does."""
        if (
            isinstance(value, str)
            and value
            and value[-1] not in "Zz"
            and "+" not in value[10:]
            and value.count("-") <= 2
        ):
            return value + "+00:00"
        return value

    def identity(self) -> str:
        """The raw identity this message is about; the Kafka key on `jm.events`."""
        return f"user:{self.user_id}" if self.user_id else f"anon:{self.anonymous_id}"

    def to_wire(self) -> dict[str, Any]:
        """The message as Segment would serialise it (camelCase, ISO timestamps)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def wire_json(self) -> bytes:
        """`to_wire` encoded as JSON by pydantic-core in one pass (no intermediate dicts): the
        form the profile service stores and republishes for every event."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True, exclude_none=True)


class _Identified(_Envelope):
    @model_validator(mode="after")
    def _needs_an_identity(self) -> _Identified:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("either userId or anonymousId is required")
        return self


class TrackEvent(_Identified):
    type: Literal["track"]
    event: NonEmpty
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyEvent(_Identified):
    type: Literal["identify"]
    traits: dict[str, Any] = Field(default_factory=dict)


class PageEvent(_Identified):
    type: Literal["page"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenEvent(_Identified):
    type: Literal["screen"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class AliasEvent(_Envelope):
    """Links `previousId` (an earlier anonymous or user id) to `userId`."""

    type: Literal["alias"]
    user_id: NonEmpty = Field(alias="userId")
    previous_id: NonEmpty = Field(alias="previousId")


class GroupEvent(_Identified):
    type: Literal["group"]
    group_id: NonEmpty = Field(alias="groupId")
    traits: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    TrackEvent | IdentifyEvent | PageEvent | ScreenEvent | AliasEvent | GroupEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES = ("track", "identify", "page", "screen", "alias", "group")


class InvalidEvent(ValueError):
    """An envelope that failed validation; the message names every bad field."""


def describe_errors(error: ValidationError) -> str:
    """`field: problem` for each error, the form a person fixing a payload needs."""
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(p) for p in item["loc"] if p not in EVENT_TYPES)
        message = item["msg"]
        if item["type"] in ("union_tag_not_found", "union_tag_invalid"):
            location = "type"
            message = f"must be one of {', '.join(EVENT_TYPES)}"
        parts.append(f"{location or 'body'}: {message}")
    return "; ".join(parts)


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    """Validate one message from JSON bytes or a decoded object."""
    try:
        if isinstance(raw, dict):
            return EVENT_ADAPTER.validate_python(raw)
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(describe_errors(exc)) from exc
