"""The gateway's core: authenticate, validate, route, and shape the reply. No Flask here."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from functions.gateway.app import MODEL_ROUTE, Cors, GatewayApp, path_id
from functions.gateway.bodies import request_payload
from functions.gateway.catalog import Catalog
from functions.gateway.config import GatewayConfig
from functions.gateway.messages import validate_count_request, validate_messages_request
from functions.gateway.observe import observed
from functions.gateway.openai.chat import ChatCompletions
from functions.gateway.openai.responses import ResponsesApi
from functions.gateway.providers.anthropic import AnthropicProvider
from functions.gateway.providers.base import Provider
from functions.gateway.providers.bedrock import BedrockProvider
from functions.gateway.providers.local import LocalProvider
from functions.gateway.router import Router
from shared.api_keys import ApiKeys
from shared.asgi import AsyncFunctionApp
from shared.config import gateway_keys
from shared.errors import ServiceError
from shared.http import SSE_CONTENT_TYPE, Call, Reply
from shared.redact import Redactor

FORWARDED = ("anthropic-beta", "anthropic-version", "user-agent")
"""The caller's headers a provider may pass on upstream."""


def default_providers(
    environ: Mapping[str, str], config: GatewayConfig | None = None
) -> dict[str, Provider]:
    """One provider instance per endpoint: the three defaults, plus one per extra base_url."""
    providers: dict[str, Provider] = {
        "anthropic": AnthropicProvider(environ),
        "bedrock": BedrockProvider(environ),
        "local": LocalProvider(),
    }
    for route in config.routes.values() if config else ():
        for deployment in route.deployments:
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
        self.catalog = Catalog(config)
        self._api_keys = ApiKeys(api_keys, "gateway")
        self._providers = {
            route: frozenset(d.provider for d in settings.deployments)
            for route, settings in config.routes.items()
        }

    def providers_of(self, model: str) -> frozenset[str]:
        """The kinds of provider (``anthropic``, ``bedrock``, ``local``) that may serve
        ``model``'s route: what a request may ask of it. Empty when no route serves it."""
        return self._providers.get(self.config.route_for(model) or "", frozenset())

    async def messages(self, call: Call) -> Reply:
        with _request_id_on_errors(call):
            self.authenticate(call)
            body = validate_messages_request(await self.payload(call))
            if body.get("stream"):
                chunks, headers = await self.stream(call, body)
                return Reply(chunks, headers=headers, content_type=SSE_CONTENT_TYPE)
            answer, headers = await self.complete(call, body)
        return Reply(answer, headers=headers)

    async def complete(self, call: Call, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A Messages request (checked) answered along its route: the Message as JSON bytes,
        and the answer's headers. Every API the gateway speaks is served through here."""
        with observed(body["model"], body) as call_observed:
            answer, outcome = await self.router.complete(body["model"], body, _forwarded(call))
            headers = outcome.headers()
            call_observed.answered(answer, headers)
        return answer, _with_request_id(headers, call)

    async def stream(
        self, call: Call, body: dict[str, Any]
    ) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """``complete``, streamed: Anthropic's events, failed over only before the first."""
        with observed(body["model"], body) as call_observed:
            chunks, outcome = await self.router.stream(body["model"], body, _forwarded(call))
            headers = {**outcome.headers(), "cache-control": "no-cache"}
        return call_observed.streaming(chunks, headers), _with_request_id(headers, call)

    def errors_with_request_id(self, call: Call) -> AbstractContextManager[None]:
        """Within it, an error answer carries ``request-id`` too."""
        return _request_id_on_errors(call)

    async def count_tokens(self, call: Call) -> Reply:
        with _request_id_on_errors(call):
            self.authenticate(call)
            body = validate_count_request(await self.payload(call))
            model = body["model"]
            counted, outcome = await self.router.count_tokens(model, body, _forwarded(call))
        headers = outcome.headers()
        if counted.get("estimate"):
            headers["x-gateway-token-count"] = "estimate"
        return Reply(counted, headers=_with_request_id(headers, call))

    async def models(self, call: Call) -> Reply:
        self.authenticate(call)
        return Reply(self.catalog.page(call.query), headers={"request-id": call.request_id})

    async def model(self, call: Call) -> Reply:
        self.authenticate(call)
        return Reply(self.catalog.model(path_id(call)), headers={"request-id": call.request_id})

    async def providers(self, call: Call) -> Reply:
        # Last errors can quote upstream messages: behind the same keys as /v1/messages.
        self.authenticate(call)
        return Reply(
            {
                "deployments": [state.status() for state in self.router.deployments],
                "routes": {
                    route: [state.deployment.name for state in chain]
                    for route, chain in self.router.routes.items()
                },
                "aliases": self.config.aliases,
            }
        )

    def health(self) -> dict[str, Any]:
        return {"routes": sorted(self.router.routes), "auth": self._api_keys.required}

    def authenticate(self, call: Call) -> None:
        """With ``GATEWAY_API_KEYS`` set, the call must carry one of them."""
        self._api_keys.check(call.headers)

    async def payload(self, call: Call) -> Any:
        return await request_payload(call.headers, call.body, self.config.max_body_bytes)


def _forwarded(call: Call) -> dict[str, str]:
    return {name: call.headers[name] for name in FORWARDED if call.headers.get(name)}


def _with_request_id(headers: dict[str, str], call: Call) -> dict[str, str]:
    """SDKs read ``request-id`` (``response._request_id``): the upstream's when the answer came
    from one, else the gateway's own."""
    headers.setdefault("request-id", call.request_id)
    return headers


@contextmanager
def _request_id_on_errors(call: Call) -> Iterator[None]:
    """An error answer carries ``request-id`` too: the upstream's, else the gateway's."""
    try:
        yield
    except ServiceError as exc:
        exc.headers.setdefault("request-id", call.request_id)
        raise


def build_service(
    environ: Mapping[str, str] | None = None,
    providers: dict[str, Provider] | None = None,
) -> GatewayService:
    environ = os.environ if environ is None else environ
    config = GatewayConfig.load(environ)
    providers = providers or default_providers(environ, config)
    router = Router(config, providers, redactor=Redactor.from_environ(environ))
    return GatewayService(config, router, frozenset(gateway_keys(environ)))


def build_app(service: GatewayService | None = None) -> AsyncFunctionApp:
    service = service or build_service()
    return GatewayApp(
        "gateway",
        {
            ("POST", "/v1/messages"): service.messages,
            ("POST", "/v1/messages/count_tokens"): service.count_tokens,
            ("POST", "/v1/responses"): ResponsesApi(service).create,
            ("POST", "/v1/chat/completions"): ChatCompletions(service),
            ("GET", "/v1/models"): service.models,
            ("GET", MODEL_ROUTE): service.model,
            ("GET", "/providers"): service.providers,
        },
        cors=Cors(service.config.cors_origins),
        max_body_bytes=service.config.max_body_bytes,
        health=service.health,
        guard=service.authenticate,  # /metrics names routes and outcomes: same keys
    )
