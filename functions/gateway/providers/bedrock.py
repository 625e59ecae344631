"""AWS Bedrock: boto3 ``bedrock-runtime`` ``invoke_model`` with the Anthropic-on-Bedrock body.

botocore's own retries are off; the gateway's resilience layer owns them. Region, credentials
and endpoint come from the standard AWS environment (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``
moves the endpoint). Streams are rendered from the complete answer: the event sequence is
Anthropic's, but the text arrives at once rather than as the model writes it.

boto3 blocks, so each call runs on a thread of this provider's own pool, sized by
``BEDROCK_MAX_IN_FLIGHT`` (default 1,024 per worker process: no lower than what the anthropic
provider holds in flight). A waiting thread costs little memory and no CPU; botocore's
connection pool is sized to match. Callers' betas go in the body's ``anthropic_beta`` list, as
Bedrock expects them.

``count_tokens`` asks Bedrock's CountTokens API for the deployment's foundation model (an
inference profile's region prefix, ``us.``, is dropped: CountTokens takes bare model ids);
where Bedrock cannot count (an older botocore, a model or region without it) the answer is
the gateway's estimate, labelled ``"estimate": true``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from functions.gateway.providers.base import ProviderCall, SentTimeout, estimated_count
from functions.gateway.streaming import events_of
from shared.errors import (
    BadGateway,
    CredentialsRefused,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_for_status,
)

T = TypeVar("T")
DEFAULT_MAX_IN_FLIGHT = 1024

BEDROCK_VERSION = "bedrock-2023-05-31"
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_BEARER_TOKEN_BEDROCK",
)
# Bedrock's error codes, by what retrying can do about them.
_RETRYABLE: dict[str, Callable[..., UpstreamError]] = {
    "ThrottlingException": RateLimited,
    "TooManyRequestsException": RateLimited,
    # 502 like any upstream 5xx: the upstream failed, the gateway did not.
    "ServiceUnavailableException": BadGateway,
    "InternalServerException": BadGateway,
    "ModelNotReadyException": BadGateway,
    "ModelTimeoutException": UpstreamTimeout,
}
_FIELDS_NOT_FOR_BEDROCK = ("model", "stream")
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")
_CANNOT_COUNT = ("ValidationException", "UnknownOperationException", "NotImplemented")
"""Bedrock's answers when it cannot count tokens for a model: the gateway estimates instead."""
_TIMEOUT_STEPS = (5, 15, 30, 60, 120, 300, 900)


class BedrockProvider:
    name = "bedrock"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.max_in_flight = int(
            self._environ.get("BEDROCK_MAX_IN_FLIGHT") or DEFAULT_MAX_IN_FLIGHT
        )
        self._pool: ThreadPoolExecutor | None = None

    def configured(self) -> bool:
        # Checking the environment, not botocore's credential chain: the chain can end in a
        # metadata-service probe that blocks for seconds on a machine outside AWS.
        if any(self._environ.get(name) for name in _CREDENTIAL_VARIABLES):
            return True
        shared_file = self._environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        return Path(shared_file).expanduser().is_file()

    def _client(self, timeout_s: float) -> Any:
        # botocore fixes timeouts when a client is made: one client per step of a few fixed
        # read timeouts, the smallest that covers this call (the deadline still bounds the
        # request as a whole: no new attempt starts once it has run out).
        key = next((step for step in _TIMEOUT_STEPS if step >= timeout_s), _TIMEOUT_STEPS[-1])
        with self._lock:
            if key not in self._clients:
                import boto3
                from botocore.config import Config

                # ``total_max_attempts`` counts calls; botocore's ``max_attempts`` counts
                # retries, so ``max_attempts: 1`` would still retry once behind our back.
                config = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=min(key, 10),
                    read_timeout=key,
                    max_pool_connections=self.max_in_flight,
                )
                region = self._environ.get("AWS_REGION") or self._environ.get(
                    "AWS_DEFAULT_REGION", "us-east-1"
                )
                self._clients[key] = boto3.client(
                    "bedrock-runtime", region_name=region, config=config
                )
            return self._clients[key]

    def _invoke(self, call: ProviderCall) -> bytes:
        try:
            response = self._client(call.timeout_s).invoke_model(
                modelId=call.model,
                body=json.dumps(_payload(call)).encode(),
                contentType="application/json",
                accept="application/json",
            )
            raw: bytes = response["body"].read()
        except Exception as exc:
            raise _translate(exc, call.timeout_s) from exc
        _keep_request_id(call, response)
        try:
            is_message = isinstance(json.loads(raw), dict)
        except ValueError:
            is_message = False
        if not is_message:
            raise BadGateway(f"bedrock answered {len(raw)} bytes that are not a JSON message")
        return raw

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="bedrock")
            return self._pool

    def _count(self, call: ProviderCall) -> dict[str, Any]:
        client = self._client(call.timeout_s)
        if not hasattr(client, "count_tokens"):
            return estimated_count(call.body)
        payload = {"max_tokens": 1, **_payload(call)}  # the invoke body requires max_tokens
        try:
            response = client.count_tokens(
                modelId=_foundation_model(call.model),
                input={"invokeModel": {"body": json.dumps(payload).encode()}},
            )
        except Exception as exc:
            if _error_code(exc) in _CANNOT_COUNT:
                return estimated_count(call.body)
            raise _translate(exc, call.timeout_s) from exc
        _keep_request_id(call, response)
        return {"input_tokens": int(response["inputTokens"])}

    async def _on_pool(self, work: Callable[[ProviderCall], T], call: ProviderCall) -> T:
        context = contextvars.copy_context()  # the request id reaches the thread's log lines
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), context.run, work, call)

    async def complete(self, call: ProviderCall) -> bytes:
        return await self._on_pool(self._invoke, call)

    async def count_tokens(self, call: ProviderCall) -> dict[str, Any]:
        return await self._on_pool(self._count, call)

    async def stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        message = json.loads(await self.complete(call))
        return events_of(message)

    async def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _payload(call: ProviderCall) -> dict[str, Any]:
    """The Anthropic-on-Bedrock body: the caller's, its betas moved from the header."""
    payload = {k: v for k, v in call.body.items() if k not in _FIELDS_NOT_FOR_BEDROCK}
    payload["anthropic_version"] = BEDROCK_VERSION
    betas = [b.strip() for b in call.headers.get("anthropic-beta", "").split(",") if b.strip()]
    if betas:
        payload["anthropic_beta"] = [*payload.get("anthropic_beta", []), *betas]
    return payload


def _foundation_model(model: str) -> str:
    """``us.anthropic.claude-...`` (an inference profile) → ``anthropic.claude-...``."""
    for prefix in _PROFILE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def _keep_request_id(call: ProviderCall, response: Mapping[str, Any]) -> None:
    request_id = response.get("ResponseMetadata", {}).get("RequestId")
    if request_id:
        call.received["request-id"] = str(request_id)


def _error_code(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _translate(exc: Exception, timeout_s: float) -> UpstreamError:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = f"bedrock: {code}: {error.get('Message', '')}".rstrip(": ")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
        if code in _RETRYABLE:
            return _RETRYABLE[code](message, upstream_status=status)
        if status in (401, 403):
            message = f"bedrock: refused the gateway's own credentials (HTTP {status}): {code}"
        return error_for_status(status, message)
    if isinstance(exc, NoCredentialsError):
        return CredentialsRefused("bedrock: the gateway has no usable AWS credentials")
    if isinstance(exc, ReadTimeoutError):
        return SentTimeout(f"bedrock did not answer within {timeout_s:g} s")
    if isinstance(exc, ConnectTimeoutError):
        return UpstreamTimeout(f"bedrock did not accept a connection within {timeout_s:g} s")
    if isinstance(exc, EndpointConnectionError):
        return UpstreamUnavailable(f"bedrock is unreachable: {exc}")
    return UpstreamUnavailable(f"bedrock call failed: {type(exc).__name__}: {exc}")
