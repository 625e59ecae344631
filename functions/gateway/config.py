"""The gateway's configuration: routes of provider deployments, and the resilience settings."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.errors import NotFound
from shared.resilience import CircuitSettings, RetrySettings
from shared.settings import FunctionSettings, SettingsFile

ProviderName = Literal["anthropic", "bedrock", "local"]


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


class Route(BaseModel):
    """A chain of deployments tried in turn, and how the gateway may use it. In the file, a
    route is either this mapping or just its list of deployments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployments: list[Deployment]
    fallback_to_local: bool = False
    """Let the route's ``local`` deployments answer although a real provider is configured
    (its failures are then answered by the rule-based model). Off: ``local`` answers only
    when none of the route's real providers is configured (the offline default)."""
    retry_sent_timeouts: bool = True
    """Retry and fail over a non-streaming attempt that timed out after its request was sent
    (the upstream may still finish, and bill, it). Off: answer 504 at once."""

    @model_validator(mode="before")
    @classmethod
    def _a_list_is_the_deployments(cls, data: Any) -> Any:
        return {"deployments": data} if isinstance(data, list) else data


class GatewayConfig(FunctionSettings):
    """``$GATEWAY_CONFIG`` or ``config/gateway.yaml``, with the variables of ``env`` on top."""

    file = SettingsFile("GATEWAY_CONFIG", "gateway.yaml")
    env = {
        "GATEWAY_DEADLINE_S": "deadline_s",
        "GATEWAY_MAX_BODY_BYTES": "max_body_bytes",
        "GATEWAY_MAX_ATTEMPTS": "retry.max_attempts",
        "GATEWAY_CIRCUIT_FAILURES": "circuit.failure_threshold",
        "GATEWAY_CIRCUIT_COOLDOWN_S": "circuit.cooldown_s",
    }

    routes: dict[str, Route]
    aliases: dict[str, str] = {}
    """Model ids clients send (exact, or ``*`` patterns such as ``claude-sonnet-*``) mapped to
    route names; an exact id wins over patterns, patterns are tried in file order."""
    deadline_s: float = Field(default=120.0, gt=0)
    """One budget per request, shared by every attempt and fallback."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body, as sent (compressed) and as decoded: Anthropic's own limit."""
    cors_origins: list[str] = []
    """Browser origins allowed to call the gateway (``*`` for any); empty: CORS off."""
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()

    @field_validator("routes")
    @classmethod
    def _routes_not_empty(cls, routes: dict[str, Route]) -> dict[str, Route]:
        if not routes:
            raise ValueError("at least one route is needed")
        for name, route in routes.items():
            if not route.deployments:
                raise ValueError(f"route {name!r} has no deployments")
        return routes

    @model_validator(mode="after")
    def _aliases_name_routes(self) -> GatewayConfig:
        for alias, route in self.aliases.items():
            if route not in self.routes:
                known = ", ".join(sorted(self.routes))
                raise ValueError(f"alias {alias!r} names no route: {route!r} (routes: {known})")
        return self

    def route_for(self, model: str) -> str | None:
        """The route that serves ``model``: a route name, an exact alias, then the first
        matching pattern; None when nothing does."""
        if model in self.routes:
            return model
        if model in self.aliases:
            return self.aliases[model]
        for pattern, route in self.aliases.items():
            if "*" in pattern and fnmatchcase(model, pattern):
                return route
        return None

    def unknown_model(self, model: str) -> NotFound:
        """Anthropic's answer to a model it does not serve: 404 ``not_found_error``."""
        known = ", ".join(self.routes)
        return NotFound(f"model: {model[:100]!r} is not served by this gateway; routes: {known}")
