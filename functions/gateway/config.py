"""The gateway's configuration: routes of provider deployments, and the resilience settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.config import config_path, load_config
from shared.resilience import CircuitSettings, RetrySettings

ProviderName = Literal["anthropic", "bedrock", "local"]

ENV_OVERRIDES = {
    "GATEWAY_DEADLINE_S": "deadline_s",
    "GATEWAY_MAX_BODY_BYTES": "max_body_bytes",
    "GATEWAY_MAX_ATTEMPTS": "retry.max_attempts",
    "GATEWAY_CIRCUIT_FAILURES": "circuit.failure_threshold",
    "GATEWAY_CIRCUIT_COOLDOWN_S": "circuit.cooldown_s",
}


class Deployment(BaseModel):
    """One place a route can get an answer from: a provider and that provider's model id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    model: str = Field(min_length=1)
    timeout_s: float = Field(default=60.0, gt=0, le=900)
    base_url: str | None = None
    """Another endpoint for this deployment's provider (anthropic only), e.g. a second region
    or a compatible proxy; default: the provider's own (``ANTHROPIC_BASE_URL`` or Anthropic)."""
    max_attempts: int | None = Field(default=None, ge=1, le=10)
    """Overrides ``retry.max_attempts`` for this deployment (1 = fall back on first failure)."""

    @property
    def name(self) -> str:
        suffix = f"@{self.base_url}" if self.base_url else ""
        return f"{self.provider}:{self.model}{suffix}"

    @property
    def endpoint(self) -> str:
        """The key of the provider instance that serves this deployment."""
        return f"{self.provider}@{self.base_url}" if self.base_url else self.provider

    @model_validator(mode="after")
    def _base_url_only_for_anthropic(self) -> Deployment:
        if self.base_url and self.provider != "anthropic":
            raise ValueError("base_url is supported for the anthropic provider only")
        return self


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: dict[str, list[Deployment]]
    deadline_s: float = Field(default=120.0, gt=0)
    """One budget per request, shared by every attempt and fallback."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()

    @field_validator("routes")
    @classmethod
    def _routes_not_empty(cls, routes: dict[str, list[Deployment]]) -> dict[str, list[Deployment]]:
        if not routes:
            raise ValueError("at least one route is needed")
        for name, chain in routes.items():
            if not chain:
                raise ValueError(f"route {name!r} has no deployments")
        return routes


def load_gateway_config(environ: Mapping[str, str] | None = None) -> GatewayConfig:
    path = config_path("GATEWAY_CONFIG", "gateway.yaml", environ)
    return load_config(GatewayConfig, path, env_overrides=ENV_OVERRIDES, environ=environ)
