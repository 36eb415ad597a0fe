"""The marketers' journey DSL as typed models. The JSON Schema editors use is generated from
these models, so the file format and its documentation cannot disagree."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.cel import check_expression

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventTrigger(_Strict):
    """Start when a customer does something, optionally only when a CEL condition holds."""

    event: str = Field(description="Track event name, e.g. 'Order Completed'.")
    condition: str | None = Field(
        default=None,
        description="CEL over `event`, `profile`; e.g. event.properties.revenue > 50",
    )

    _check = field_validator("condition")(check_expression)


class SendStep(_Strict):
    """Ask the channels service to send a message; consent and caps are applied there."""

    id: Identifier
    type: Literal["send"]
    channel: Literal["email", "sms", "push", "webhook"]
    template: str = Field(description="Template name under templates/.")
    message_type: str = Field(default="marketing", description="transactional, marketing, ...")


Step = Annotated[SendStep, Field(discriminator="type")]


class Journey(_Strict):
    """One journey file: `journeys/<id>.yaml`."""

    id: Identifier
    name: str
    version: int = Field(ge=1)
    description: str | None = None
    enabled: bool = True
    priority: int = Field(default=0, description="Higher wins when channel caps collide.")
    trigger: EventTrigger
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_step_ids(self) -> Journey:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self
