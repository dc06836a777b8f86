"""The agent file's schema: goal, audience, dimensions, guardrails, policy and destinations.

Pure data and its own checks: it imports nothing of the policies. Reading a file, and checking
the policies it names and their parameters, is `decisioning.config.load_agent`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from journeyman.decisioning.audience import Audience

CHANNELS = ("email", "sms", "push")
Channel = Literal["email", "sms", "push"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AgentConfigError(ValueError):
    """An agent file is invalid; the message names file, field and fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Goal(_Strict):
    """What the agent maximises, and how long after a message an outcome still counts.

    `conversion`: the customer orders inside the window; `revenue`: the window's order revenue;
    `retention`: the customer orders inside the window and has not unsubscribed from any channel
    by its end (reducing churn: an order bought with an opt-out is not a win)."""

    metric: Literal["conversion", "revenue", "retention"]
    attribution_window_days: int = Field(7, ge=1, le=90)
    # learning may read a shorter window than the goal is judged on (sooner, less noisy rewards)
    learning_window_days: int | None = Field(None, ge=1, le=90)
    # what the agent learns from: each decision's own reward, or the engagement surrogate (the
    # mean reward of the decisions with the same channel and engagement; docs/learning.md)
    learning_signal: Literal["outcome", "surrogate"] = "outcome"
    penalties: dict[Literal["unsubscribe", "complaint"], float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _windows(self) -> Goal:
        if self.learning_window_days is not None and (
            self.learning_window_days > self.attribution_window_days
        ):
            raise ValueError(
                "`learning_window_days` must not exceed `attribution_window_days` "
                f"({self.attribution_window_days})"
            )
        return self

    @property
    def learning_window(self) -> int:
        """Days of outcomes a decision's learning reward counts."""
        return self.learning_window_days or self.attribution_window_days


class ChannelContent(_Strict):
    """The creative for one channel: Jinja templates, or the destination's own template id."""

    subject: str | list[str] | None = None  # several: subject-line variants the agent tests
    title: str | None = None
    body: str | None = None
    template_id: str | None = None
    # with a template_id: the vendor template's variables, each a Jinja template
    variables: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_content(self) -> ChannelContent:
        if not (self.body or self.template_id):
            raise ValueError("give a `body` template or a destination `template_id`")
        if self.variables and not self.template_id:
            raise ValueError("`variables` fill a destination `template_id`; add one or drop them")
        if isinstance(self.subject, list) and not self.subject:
            raise ValueError("`subject` lists at least one subject line")
        return self

    @property
    def subjects(self) -> list[str | None]:
        """The subject-line variants (one entry, possibly None, when there is no choice)."""
        return list(self.subject) if isinstance(self.subject, list) else [self.subject]


class Message(_Strict):
    """One message (template / offer) with its tags and per-channel content."""

    id: str
    tags: dict[str, str] = Field(default_factory=dict)
    email: ChannelContent | None = None
    sms: ChannelContent | None = None
    push: ChannelContent | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lower_snake_case letters, digits and underscores")
        return v

    def content(self, channel: str) -> ChannelContent | None:
        return getattr(self, channel)


class Dimensions(_Strict):
    """What the agent may vary."""

    channels: list[Channel] = Field(min_length=1)
    send_hours: list[int] = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    allow_no_send: bool = True

    @field_validator("send_hours")
    @classmethod
    def _hours(cls, v: list[int]) -> list[int]:
        if any(h < 0 or h > 23 for h in v):
            raise ValueError("local hours are whole numbers 0..23")
        if len(set(v)) != len(v):
            raise ValueError("list each hour once")
        return sorted(v)

    @model_validator(mode="after")
    def _coherent(self) -> Dimensions:
        ids = [m.id for m in self.messages]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"message ids must be unique; repeated: {dupes}")
        for ch in self.channels:
            if not any(m.content(ch) for m in self.messages):
                raise ValueError(f"channel `{ch}` is listed but no message has `{ch}` content")
        return self


class QuietHours(_Strict):
    """Local hours in [start, end) (wrapping midnight) when nothing may be sent."""

    start: int = Field(ge=0, le=23)
    end: int = Field(ge=0, le=23)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        # start == end would be an empty range: quiet hours that silently never apply
        if self.start == self.end:
            raise ValueError(
                f"`start` and `end` are both {self.start}, which means no quiet hours at all; "
                "omit quiet_hours for none, or give different hours (e.g. start: 21, end: 8)"
            )
        return self

    def contains(self, hour: int) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end


class Guardrails(_Strict):
    """Hard rules no decision may break."""

    consent_required: bool = True
    quiet_hours: QuietHours | None = None
    max_per_day: int = Field(1, ge=0)
    max_per_week: int = Field(3, ge=0)
    max_per_channel_per_week: dict[Channel, int] = Field(default_factory=dict)
    min_gap_hours: float = Field(0, ge=0)
    holdout_share: float = Field(0.1, ge=0, lt=1)
    # a late message (a dispatch that was down, a re-run) may still leave this long after its
    # send time — never into the quiet hours, never after the customer's local day (None: until
    # one of those)
    send_window_hours: float | None = Field(None, gt=0, le=24)

    @field_validator("consent_required")
    @classmethod
    def _consent(cls, v: bool) -> bool:
        if not v:
            raise ValueError("consent cannot be switched off: journeyman never sends without it")
        return v


Mode = Literal["live", "shadow"]


class PolicySpec(_Strict):
    """A learning or baseline policy and its hyperparameters. `mode: shadow`: it decides for
    its share of the audience and logs the decisions, but nothing is sent (docs/agents.md)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    mode: Mode = "live"


ComparisonGroup = Literal["business_as_usual", "random_control", "challenger"]
#: the experiment group a baseline serves when its file names none, by policy name
DEFAULT_GROUP: dict[str, ComparisonGroup] = {
    "rule_based": "business_as_usual",
    "uniform_random": "random_control",
}


class Baseline(PolicySpec):
    """A comparison policy that serves a fixed share of the non-holdout audience, as its own
    experiment group: `business_as_usual` (the journey the team runs today; default for
    `rule_based`), `random_control` (default for `uniform_random`) or `challenger` (any other
    policy)."""

    share: float = Field(gt=0, lt=1)
    group: ComparisonGroup | None = None

    @property
    def experiment_group(self) -> str:
        return self.group or DEFAULT_GROUP.get(self.name, "challenger")


class AgentConfig(_Strict):
    """One agent (use case): the whole YAML file."""

    name: str
    description: str = ""
    salt: str | None = None
    goal: Goal
    audience: str = "true"
    # shadow: every decision is computed and logged (with its propensity), written to the
    # shadow outbox and never sent, counted or learned from as sent
    mode: Mode = "live"
    features: list[str] | None = None
    dimensions: Dimensions
    guardrails: Guardrails = Guardrails()
    policy: PolicySpec
    baselines: list[Baseline] = Field(default_factory=list)
    destinations: dict[Channel, str]
    _source: str = PrivateAttr("")

    @property
    def source(self) -> str:
        """The file this agent was loaded from (for error messages)."""
        return self._source or f"agent {self.name}"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lower_snake_case, e.g. `winback`")
        return v

    @field_validator("audience")
    @classmethod
    def _audience(cls, v: str) -> str:
        Audience.parse(v)  # AudienceError (a ValueError) names the construct that is refused
        return v

    @property
    def audience_expression(self) -> Audience:
        """The checked audience, compiled to SQL with bind parameters by the store."""
        return Audience.parse(self.audience)

    @property
    def holdout_salt(self) -> str:
        return self.salt or self.name

    @model_validator(mode="after")
    def _coherent(self) -> AgentConfig:
        missing = [c for c in self.dimensions.channels if c not in self.destinations]
        if missing:
            raise ValueError(f"`destinations` has no entry for channel(s) {missing}")
        if sum(b.share for b in self.baselines) >= 1:
            raise ValueError("`baselines` shares must add up to less than 1")
        groups = [b.experiment_group for b in self.baselines]
        repeated = sorted({g for g in groups if groups.count(g) > 1 and g != "challenger"})
        if repeated:
            raise ValueError(
                f"`baselines` has more than one {repeated[0]} group; give each baseline its own "
                "`group` (business_as_usual, random_control or challenger)"
            )
        qh = self.guardrails.quiet_hours
        if qh and all(qh.contains(h) for h in self.dimensions.send_hours):
            raise ValueError(
                "every `dimensions.send_hours` falls inside `guardrails.quiet_hours`; "
                "add an hour outside them"
            )
        return self
