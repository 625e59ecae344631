"""What one run may spend, in one place: the ``Budget`` a run gets (steps, wall-clock time,
tokens), the defaults and caps a deployment sets for it (``BudgetSettings``, the config's
``budgets:``), and what bounds each step of it (``LoopSettings``).

A request may ask for a smaller or larger budget than the default, up to the caps; the loop
checks the budget before each model call and bounds the whole run by its time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import BadRequest

if TYPE_CHECKING:
    from functions.orchestrator.config import OrchestratorConfig

NumberT = TypeVar("NumberT", int, float)


@dataclass(frozen=True)
class Budget:
    """One run's budget."""

    max_steps: int
    """Model and agent steps in the trace."""
    timeout_s: float
    """Wall clock of the whole run."""
    max_tokens: int
    """Input plus output tokens over all model calls."""


class BudgetSettings(BaseModel):
    """The defaults a run gets and the caps a request may ask up to (``budgets:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(default=8, ge=1)
    max_steps_cap: int = Field(default=32, ge=1, le=1000)
    timeout_s: float = Field(default=60.0, gt=0)
    timeout_cap_s: float = Field(default=300.0, gt=0, le=3600)
    max_tokens: int = Field(default=50_000, ge=1)
    """Input plus output tokens over all model calls of one run."""
    max_tokens_cap: int = Field(default=1_000_000, ge=1)

    @model_validator(mode="after")
    def _defaults_within_caps(self) -> Self:
        for name, cap in (
            ("max_steps", "max_steps_cap"),
            ("timeout_s", "timeout_cap_s"),
            ("max_tokens", "max_tokens_cap"),
        ):
            if getattr(self, name) > getattr(self, cap):
                raise ValueError(f"{name} ({getattr(self, name)}) is above {cap}")
        return self

    def budget_for(
        self,
        max_steps: int | None = None,
        timeout_s: float | None = None,
        max_tokens: int | None = None,
    ) -> Budget:
        """The budget a request asks for (None: the default); above a cap is a 400."""
        return Budget(
            max_steps=_within("max_steps", max_steps, self.max_steps, self.max_steps_cap),
            timeout_s=_within("timeout_s", timeout_s, self.timeout_s, self.timeout_cap_s),
            max_tokens=_within("max_tokens", max_tokens, self.max_tokens, self.max_tokens_cap),
        )


def _within(name: str, asked: NumberT | None, default: NumberT, cap: NumberT) -> NumberT:
    if asked is None:
        return default
    if asked > cap:
        shown = str(asked) if len(str(cap)) < 40 and asked < cap * 1000 else "larger"
        raise BadRequest(f"{name}: {shown} is above the limit of {cap}")
    return asked


@dataclass(frozen=True)
class LoopSettings:
    """What bounds each step of a run, whatever its budget."""

    model_timeout_s: float = 60.0
    """One model call (the run's time left may cut it shorter)."""
    max_tokens_per_call: int = 1024
    """``max_tokens`` of each model call (the run's tokens left may lower it)."""
    max_parallel: int = 4
    """Tool calls of one model turn that run at once."""
    max_data_chars: int = 4000
    """Data up to this size is shown to the model whole; larger data as a summary."""
    max_result_chars: int = 8000
    """An agent's answer is cut to this many characters before the model sees it."""
    approval_required: frozenset[str] = frozenset()
    """Tools whose calls pause the run until a person approves them."""

    @classmethod
    def of(cls, config: OrchestratorConfig) -> LoopSettings:
        """The settings ``config`` gives the loop (from its ``gateway:``, ``agent_calls:`` and
        top-level keys)."""
        return cls(
            model_timeout_s=config.gateway.timeout_s,
            max_tokens_per_call=config.gateway.max_tokens_per_call,
            max_parallel=config.agent_calls.max_parallel,
            max_data_chars=config.max_data_chars_in_prompt,
            max_result_chars=config.max_result_chars,
            approval_required=frozenset(
                [*config.approval_required]
                + [name for name, entry in config.agents.items() if entry.requires_approval]
            ),
        )
