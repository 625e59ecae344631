"""AWS Bedrock, spoken on the wire: ``POST /model/{modelId}/invoke`` through the outbound
transport (``shared.transport``: ``shared.wire`` unless configured otherwise).

The body is the Anthropic-on-Bedrock JSON (``anthropic_version``; the caller's betas in the
body's ``anthropic_beta`` list, as Bedrock expects them). The request is signed with botocore's
public SigV4 API, or sent with ``Authorization: Bearer`` when ``AWS_BEARER_TOKEN_BEDROCK`` is
set. No boto3 client and no thread per call: boto3's per-call CPU and a thread pool of a
thousand threads contending for the GIL held Bedrock to a quarter of what the anthropic
provider keeps in flight (bench/RESULTS.md). The gateway's resilience layer owns retries.

Configuration is the standard AWS environment: the region from ``AWS_REGION`` or
``AWS_DEFAULT_REGION`` (else ``us-east-1``); the endpoint from
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` or ``AWS_ENDPOINT_URL`` (ignored when
``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true, as botocore does); credentials from botocore's
own chain (environment, profile, web identity, container, instance metadata), resolved once
and refreshed before they expire.

Streams are rendered from the complete answer: the event sequence is Anthropic's, but the text
arrives at once rather than as the model writes it.

``count_tokens`` asks Bedrock's CountTokens API for the deployment's foundation model (an
inference profile's region prefix, ``us.``, is dropped: CountTokens takes bare model ids);
where Bedrock cannot count (a model or region without it) the answer is the gateway's
estimate, labelled ``"estimate": true``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from functions.gateway.providers.base import (
    USER_AGENT,
    ProviderCall,
    checked_message,
    estimated_count,
    json_object,
)
from functions.gateway.streaming import events_of
from shared.aws import AwsCredentials, sigv4_headers
from shared.context import current_request_id
from shared.errors import (
    BadGateway,
    CredentialsRefused,
    RateLimited,
    UpstreamError,
    UpstreamForbidden,
    UpstreamTimeout,
    error_for_status,
    parse_retry_after,
)
from shared.transport import FAILURES, Answer, Transport, outbound_transport, upstream_failure

BEDROCK_VERSION = "bedrock-2023-05-31"
SIGNING_NAME = "bedrock"
DEFAULT_REGION = "us-east-1"
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_BEARER_TOKEN_BEDROCK",
)
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL")
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
_REFUSING_US = (
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
)
"""Codes that say the gateway's own credentials were refused (whatever status came with them):
no request can pass with them, so the deployment's circuit opens."""
_FIELDS_NOT_FOR_BEDROCK = ("model", "stream")
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")
_CANNOT_COUNT = ("ValidationException", "UnknownOperationException", "NotImplemented")
"""Bedrock's answers when it cannot count tokens for a model: the gateway estimates instead."""


class AccessDenied(UpstreamForbidden):
    """Bedrock's ``AccessDeniedException`` (or a 403 without a credentials code): the
    credentials were accepted, but IAM or the account's model access denies this call. That
    is per model, and IAM conditions can make it per request, so it does not open the
    circuit (one caller's request must not take the deployment from everyone); another
    deployment (another model or account) may be allowed, so the route falls back. Answered
    as 403 ``permission_error`` when nothing else answers."""

    falls_back = True


class BedrockProvider:
    name = "bedrock"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        transport: Transport | None = None,
        credentials: AwsCredentials | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self.region = self._environ.get("AWS_REGION") or self._environ.get(
            "AWS_DEFAULT_REGION", DEFAULT_REGION
        )
        self.endpoint = endpoint_of(self._environ, self.region)
        # Given, so that botocore need not work it out from the URL on every call (a sixth of
        # the signing time) and the client sends exactly the host that was signed.
        self._host = urlsplit(self.endpoint).netloc
        self._bearer = self._environ.get("AWS_BEARER_TOKEN_BEDROCK") or ""
        self._transport = transport or outbound_transport(environ)
        self._credentials = credentials or AwsCredentials()

    def configured(self) -> bool:
        # Checking the environment, not botocore's credential chain: the chain can end in a
        # metadata-service probe that blocks for seconds on a machine outside AWS.
        if any(self._environ.get(name) for name in _CREDENTIAL_VARIABLES):
            return True
        shared_file = self._environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        return Path(shared_file).expanduser().is_file()

    def url_for(self, model: str, action: str) -> str:
        # The model id is one path segment: its ``:`` and an ARN's ``/`` are percent-encoded,
        # as botocore encodes them (and signs the encoded path).
        return f"{self.endpoint}/model/{quote(model, safe='')}/{action}"

    async def _headers(self, url: str, body: bytes) -> dict[str, str]:
        headers = {
            "host": self._host,
            "content-type": "application/json",
            "accept": "application/json",
        }
        if self._bearer:
            headers["authorization"] = f"Bearer {self._bearer}"
        else:
            frozen = await self._credentials.frozen()
            headers = sigv4_headers(frozen, SIGNING_NAME, self.region, "POST", url, body, headers)
        # Unsigned, so that neither can break a signature.
        headers["user-agent"] = USER_AGENT
        request_id = current_request_id()
        if request_id:
            headers["x-request-id"] = request_id
        return headers

    async def _post(self, call: ProviderCall, model: str, action: str, body: bytes) -> Answer:
        url = self.url_for(model, action)
        headers = await self._headers(url, body)
        connect = min(10.0, call.timeout_s / 2)
        try:
            async with asyncio.timeout(call.timeout_s):
                # The path is sent exactly as signed, and the host the client writes is the
                # signed one (the endpoint's authority).
                answer = await self._transport.exchange(
                    "POST", url, headers, body, connect_timeout_s=connect
                )
        except FAILURES as exc:
            raise upstream_failure(self.name, exc, call.timeout_s) from exc
        request_id = answer.headers.get("x-amzn-requestid")
        if request_id and answer.status < 400:
            call.received["request-id"] = request_id
        return answer

    async def complete(self, call: ProviderCall) -> bytes:
        body = json.dumps(_payload(call)).encode()
        answer = await self._post(call, call.model, "invoke", body)
        if answer.status >= 400:
            raise status_error(answer)
        return checked_message(answer.body, self.name)

    async def count_tokens(self, call: ProviderCall) -> dict[str, Any]:
        invoke_body = json.dumps({"max_tokens": 1, **_payload(call)}).encode()  # it needs one
        # ``body`` is a blob, which Bedrock's JSON protocol carries as base64.
        request = {"input": {"invokeModel": {"body": base64.b64encode(invoke_body).decode()}}}
        model = _foundation_model(call.model)
        answer = await self._post(call, model, "count-tokens", json.dumps(request).encode())
        if answer.status >= 400:
            if error_code(answer) in _CANNOT_COUNT:
                return estimated_count(call.body)
            raise status_error(answer)
        counted = json_object(answer.body)
        tokens = counted.get("inputTokens") if counted is not None else None
        if not isinstance(tokens, int):
            raise BadGateway(
                f"bedrock answered CountTokens with {len(answer.body)} bytes of nonsense"
            )
        return {"input_tokens": tokens}

    async def stream(self, call: ProviderCall) -> AsyncIterator[bytes]:
        message = json.loads(await self.complete(call))
        return events_of(message)

    async def close(self) -> None:
        await self._transport.close()


def endpoint_of(environ: Mapping[str, str], region: str) -> str:
    """Where bedrock-runtime is, as botocore finds it (service variable, then the global one)."""
    ignored = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true"
    for name in () if ignored else _ENDPOINT_VARIABLES:
        if environ.get(name):
            return environ[name].rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://bedrock-runtime.{region}.{suffix}"


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


def error_code(answer: Answer) -> str:
    """Bedrock's error code: ``x-amzn-ErrorType`` (``ThrottlingException:http://...``), else
    the body's ``__type`` (``com.amazon...#ThrottlingException``)."""
    body = json_object(answer.body) or {}
    raw = answer.headers.get("x-amzn-errortype") or str(body.get("__type", ""))
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def status_error(answer: Answer) -> UpstreamError:
    """The error class for Bedrock's error answer, by its code first, then its status."""
    code, body = error_code(answer), (json_object(answer.body) or {})
    text = body.get("message") or body.get("Message") or ""
    if not isinstance(text, str):
        text = ""
    if not text and not body:
        text = answer.body[:200].decode("utf-8", "replace").strip()
    status = answer.status
    detail = ": ".join(part for part in (code, text) if part) or f"HTTP {status}"
    message = f"bedrock: {detail}"
    if code in _RETRYABLE:
        return _RETRYABLE[code](message, upstream_status=status)
    if code in _REFUSING_US or status == 401:
        return CredentialsRefused(
            f"bedrock: refused the gateway's own credentials (HTTP {status}): {detail}",
            upstream_status=status,
        )
    if code == "AccessDeniedException" or status == 403:
        return AccessDenied(message, upstream_status=status)
    return error_for_status(status, message, retry_after=parse_retry_after(answer.headers))
