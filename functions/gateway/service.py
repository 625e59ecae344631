"""The gateway's core: authenticate, validate, route, and shape the reply. No Flask here."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any

from functions.gateway.config import GatewayConfig, load_gateway_config
from functions.gateway.messages import validate_messages_request
from functions.gateway.providers import anthropic as anthropic_provider
from functions.gateway.providers.anthropic import AnthropicProvider
from functions.gateway.providers.base import Provider
from functions.gateway.providers.bedrock import BedrockProvider
from functions.gateway.providers.local import LocalProvider
from functions.gateway.router import Router
from shared.errors import Unauthorized
from shared.http import Call, FunctionApp, Reply

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def default_providers(
    environ: Mapping[str, str], config: GatewayConfig | None = None
) -> dict[str, Provider]:
    """One provider instance per endpoint: the three defaults, plus one per extra base_url."""
    providers: dict[str, Provider] = {
        "anthropic": AnthropicProvider(environ),
        "bedrock": BedrockProvider(environ),
        "local": LocalProvider(),
    }
    for chain in config.routes.values() if config else ():
        for deployment in chain:
            if deployment.base_url and deployment.endpoint not in providers:
                providers[deployment.endpoint] = AnthropicProvider(environ, deployment.base_url)
    return providers


class GatewayService:
    def __init__(
        self,
        config: GatewayConfig,
        router: Router,
        api_keys: frozenset[str] = frozenset(),
    ) -> None:
        self.config = config
        self.router = router
        self._api_keys = api_keys

    def messages(self, call: Call) -> Reply:
        self._authenticate(call.headers)
        body = validate_messages_request(call.inbound().data)
        route = body["model"]
        if body.get("stream"):
            chunks, outcome = self.router.stream(route, body)
            headers = {**outcome.headers(), "cache-control": "no-cache"}
            return Reply(chunks, headers=headers, content_type=SSE_CONTENT_TYPE)
        answer, outcome = self.router.complete(route, body)
        return Reply(answer, headers=outcome.headers())

    def providers(self, call: Call) -> Reply:
        # Last errors can quote upstream messages: behind the same keys as /v1/messages.
        self._authenticate(call.headers)
        return Reply(
            {
                "deployments": [state.status() for state in self.router.deployments],
                "routes": {
                    route: [state.deployment.name for state in chain]
                    for route, chain in self.router.routes.items()
                },
            }
        )

    def health(self) -> dict[str, Any]:
        return {"routes": sorted(self.router.routes), "auth": bool(self._api_keys)}

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        if not self._api_keys:
            return
        offered = headers.get("x-api-key") or ""
        authorization = headers.get("authorization") or ""
        if not offered and authorization.lower().startswith("bearer "):
            offered = authorization[7:].strip()
        if not offered:
            raise Unauthorized("an API key is required: send it as x-api-key or Bearer token")
        # Compare against every key in constant time so timing tells nothing about which matched.
        matched = [hmac.compare_digest(offered.encode(), key.encode()) for key in self._api_keys]
        if not any(matched):
            raise Unauthorized("the API key is not valid for this gateway")


def build_service(
    environ: Mapping[str, str] | None = None,
    providers: dict[str, Provider] | None = None,
) -> GatewayService:
    environ = os.environ if environ is None else environ
    config = load_gateway_config(environ)
    providers = providers or default_providers(environ, config)
    if providers["anthropic"].configured():
        anthropic_provider.preload()
    router = Router(config, providers)
    keys = frozenset(k.strip() for k in environ.get("GATEWAY_API_KEYS", "").split(",") if k.strip())
    return GatewayService(config, router, keys)


def build_app(service: GatewayService | None = None) -> FunctionApp:
    service = service or build_service()
    app = FunctionApp(
        "gateway",
        {
            ("POST", "/v1/messages"): service.messages,
            ("GET", "/providers"): service.providers,
        },
        max_body_bytes=service.config.max_body_bytes,
        health=service.health,
    )
    return app
