"""The step types of a journey. Every step has an `id`; by default a step continues with the
next one in the list, and `next` sends it elsewhere."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.journey.durations import Duration
from shared.cel_check import JOURNEY_VARIABLES, condition_checker

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]
TimeOfDay = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]
Channel = Literal["email", "sms", "push", "webhook"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(Strict):
    id: Identifier
    name: str | None = Field(default=None, description="Label shown in diagrams and stats.")
    next: Identifier | None = Field(
        default=None, description="Step to continue with; default: the next step in the list."
    )


class SendStep(_Step):
    """Ask the channels service to send a message; consent, caps and quiet hours apply there."""

    type: Literal["send"]
    channel: Channel
    template: str = Field(description="Template folder under templates/.")
    message_type: str = Field(default="marketing", description="transactional, marketing, ...")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-step extras for the channel, e.g. {subject: ..., from: ...}.",
    )
    survey: Literal["nps", "csat", "ces"] | None = Field(
        default=None, description="Adds a signed survey link (`links.survey`) to the message."
    )


class WaitStep(_Step):
    """Pause: for a duration, until a time of day in the customer's time zone, or until a date
    held in a profile attribute (plus or minus some days). Exactly one of the three."""

    type: Literal["wait"]
    duration: Duration | None = Field(default=None, description="e.g. 3d, 4h, 30m.")
    until_time: TimeOfDay | None = Field(
        default=None,
        description="Next HH:MM in the customer's time zone (traits.timezone, else UTC).",
    )
    until_date_attribute: str | None = Field(
        default=None, description="Profile trait holding a date, e.g. 'renewal_date'."
    )
    offset_days: int = Field(default=0, description="Days after (negative: before) that date.")
    at: TimeOfDay = Field(default="09:00", description="Time of day for until_date_attribute.")

    @model_validator(mode="after")
    def _one_kind(self) -> WaitStep:
        given = [k for k in ("duration", "until_time", "until_date_attribute") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a wait needs exactly one of duration, until_time, until_date_attribute"
            )
        return self


class WaitForEventStep(_Step):
    """Wait until the customer does something, or until the timeout; each has its own path."""

    type: Literal["wait_for_event"]
    event: str = Field(description="Track event to wait for, e.g. 'Order Completed'.")
    match: list[str] = Field(
        default_factory=list,
        description="Properties that must equal the triggering event's, e.g. [cart_id].",
    )
    condition: str | None = Field(default=None, description="CEL over event, profile, journey.")
    timeout: Duration
    on_event: Identifier | None = Field(
        default=None, description="Step when the event arrives; default: the next step."
    )
    on_timeout: Identifier | None = Field(
        default=None, description="Step when the timeout passes; default: the next step."
    )

    _check = field_validator("condition")(condition_checker(JOURNEY_VARIABLES))


class BranchCase(Strict):
    condition: str = Field(description="CEL over profile, event, journey.")
    next: Identifier
    label: str | None = Field(default=None, description="Name in stats; default: the target.")

    _check = field_validator("condition")(condition_checker(JOURNEY_VARIABLES))


class BranchStep(_Step):
    """First case whose condition holds wins; otherwise `default` (or the next step)."""

    type: Literal["branch"]
    cases: list[BranchCase] = Field(min_length=1)
    default: Identifier | None = None


class SplitPath(Strict):
    label: str
    weight: int = Field(ge=0, le=10_000)
    next: Identifier


class SplitStep(_Step):
    """Random A/B/n split; each customer's draw is a stable hash, so redelivery agrees."""

    type: Literal["split"]
    paths: list[SplitPath] = Field(min_length=2)

    @model_validator(mode="after")
    def _weights(self) -> SplitStep:
        if sum(p.weight for p in self.paths) <= 0:
            raise ValueError("split weights must add up to more than 0")
        return self


class UpdateProfileStep(_Step):
    """Set profile traits (an `identify` the profile service applies)."""

    type: Literal["update_profile"]
    traits: dict[str, Any] = Field(min_length=1, description="Trait name -> value to set.")


class WebhookStep(_Step):
    """Call an HTTP endpoint. Private, loopback and link-local addresses are refused unless
    the operator allow-lists them (JOURNEYMAN_JOURNEY_WEBHOOK_ALLOW)."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="http(s) URL.")
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = Field(
        default=None, description="JSON body; default: profile id, journey, step and event."
    )


class GotoStep(_Step):
    """Jump back to an earlier step; `max_loops` times at most, then continue with `next`."""

    type: Literal["goto"]
    target: Identifier
    max_loops: int = Field(ge=1, le=100, description="Loop guard: jumps per instance.")


class ExitStep(_Step):
    """End the instance here."""

    type: Literal["exit"]


Step = Annotated[
    SendStep
    | WaitStep
    | WaitForEventStep
    | BranchStep
    | SplitStep
    | UpdateProfileStep
    | WebhookStep
    | GotoStep
    | ExitStep,
    Field(discriminator="type"),
]


def targets(step: Any) -> list[tuple[str, str]]:
    """(label, step id) of every explicit jump a step can make."""
    out: list[tuple[str, str]] = []
    if step.next:
        out.append(("next", step.next))
    if isinstance(step, WaitForEventStep):
        out += [(k, v) for k, v in (("event", step.on_event), ("timeout", step.on_timeout)) if v]
    elif isinstance(step, BranchStep):
        out += [(c.label or c.next, c.next) for c in step.cases]
        if step.default:
            out.append(("default", step.default))
    elif isinstance(step, SplitStep):
        out += [(p.label, p.next) for p in step.paths]
    elif isinstance(step, GotoStep):
        out.append(("loop", step.target))
    return out
