"""The Bedrock provider on the wire: what it sends (signature, bearer token, path, body), how
its credentials are found and refreshed, and what each Bedrock answer becomes.

These talk to ``BedrockWire``, which records requests as they came; the gateway-level Bedrock
tests (test_providers, test_router, test_streaming) go through moto's server mode instead.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from emulator.process import free_port
from functions.gateway.providers.base import ProviderCall, SentTimeout
from functions.gateway.providers.bedrock import AccessDenied, BedrockProvider
from shared.aws import AwsCredentials
from shared.errors import (
    BadGateway,
    CredentialsRefused,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.fakes.bedrock import BedrockWire
from tests.fakes.server import RecordedRequest, Reply

MODEL = "us.anthropic.claude-test-v1:0"
BODY = {"max_tokens": 64, "messages": [{"role": "user", "content": "hello"}], "stream": True}
SIGNATURE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@pytest.fixture
def wire() -> Iterator[BedrockWire]:
    with BedrockWire() as server:
        yield server


def static(key: str = "AKIDTEST", token: str | None = "session-token") -> AwsCredentials:
    return AwsCredentials(lambda: Credentials(key, "secret-" + key, token))


def provider(
    wire: BedrockWire, credentials: AwsCredentials | None = None, **env: str
) -> BedrockProvider:
    environ = {"AWS_REGION": "eu-west-3", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": wire.url, **env}
    return BedrockProvider(environ, credentials=credentials or static())


def call(timeout_s: float = 3.0, headers: dict[str, str] | None = None) -> ProviderCall:
    return ProviderCall(body=dict(BODY), model=MODEL, timeout_s=timeout_s, headers=headers or {})


def run(bedrock: BedrockProvider, work: Callable[[BedrockProvider], Any]) -> Any:
    async def go() -> Any:
        try:
            return await work(bedrock)
        finally:
            await bedrock.close()

    return asyncio.run(go())


def signature_checks_out(request: RecordedRequest, url: str, secret: str) -> bool:
    """Recompute SigV4 over what arrived: the path, the signed headers and the body as sent."""
    parts = SIGNATURE.fullmatch(request.headers["authorization"])
    assert parts is not None, request.headers["authorization"]
    signed = parts["signed"].split(";")
    received = AWSRequest(
        method=request.method,
        url=url + request.path,
        data=request.raw,
        headers={name: request.headers[name] for name in signed},
    )
    received.context["timestamp"] = request.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(parts["key"], secret), parts["service"], parts["region"])
    canonical = auth.canonical_request(received)
    expected = auth.signature(auth.string_to_sign(received, canonical), received)
    return bool(expected == parts["signature"])


def test_invoke_is_signed_for_bedrock_in_the_region_over_exactly_what_was_sent(
    wire: BedrockWire,
) -> None:
    sent = call(headers={"anthropic-beta": "beta-one, beta-two"})

    raw = run(provider(wire), lambda bedrock: bedrock.complete(sent))

    assert json.loads(raw)["content"][0]["text"] == "fake-bedrock wire answer"
    [request] = wire.requests
    assert request.path == "/model/us.anthropic.claude-test-v1%3A0/invoke"  # one path segment
    parts = SIGNATURE.fullmatch(request.headers["authorization"])
    assert parts is not None
    assert (parts["key"], parts["region"], parts["service"]) == ("AKIDTEST", "eu-west-3", "bedrock")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(parts["signed"].split(";"))
    assert request.headers["x-amz-security-token"] == "session-token"
    assert signature_checks_out(request, wire.url, "secret-AKIDTEST")
    assert (request.headers["content-type"], request.headers["accept"]) == ("application/json",) * 2
    assert request.body == {
        "max_tokens": 64,
        "messages": BODY["messages"],
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["beta-one", "beta-two"],
    }
    assert sent.received["request-id"] == BedrockWire.REQUEST_ID


def test_a_bearer_token_is_sent_as_is_and_nothing_is_signed(wire: BedrockWire) -> None:
    def no_chain() -> Credentials:
        raise AssertionError("the credential chain must not be consulted with a bearer token")

    bedrock = provider(wire, AwsCredentials(no_chain), AWS_BEARER_TOKEN_BEDROCK="bedrock-key-1")
    run(bedrock, lambda b: b.complete(call()))

    [request] = wire.requests
    assert request.headers["authorization"] == "Bearer bedrock-key-1"
    assert "x-amz-date" not in request.headers


def test_credentials_are_resolved_once_and_refreshed_before_they_expire(
    wire: BedrockWire,
) -> None:
    expiry = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    now = [expiry - datetime.timedelta(hours=1)]
    refreshed: list[str] = []

    def refresh() -> dict[str, str]:
        refreshed.append("AKID2")
        later = expiry + datetime.timedelta(hours=1)
        return {"access_key": "AKID2", "secret_key": "s2", "token": "t2", "expiry_time": str(later)}

    resolved: list[int] = []

    def chain() -> Credentials:
        resolved.append(1)
        return RefreshableCredentials(
            "AKID1", "s1", "t1", expiry, refresh, "test", time_fetcher=lambda: now[0]
        )

    async def three_calls(bedrock: BedrockProvider) -> None:
        await bedrock.complete(call())
        await bedrock.complete(call())
        now[0] = expiry - datetime.timedelta(minutes=5)  # inside botocore's refresh window
        await bedrock.complete(call())

    run(provider(wire, AwsCredentials(chain)), three_calls)

    keys = [SIGNATURE.fullmatch(r.headers["authorization"])["key"] for r in wire.requests]  # type: ignore[index]
    assert keys == ["AKID1", "AKID1", "AKID2"]
    assert (len(resolved), refreshed) == (1, ["AKID2"])
    assert signature_checks_out(wire.requests[2], wire.url, "s2")


@pytest.mark.parametrize("minutes_left", [12, 5], ids=["advisory", "mandatory"])
def test_a_failing_refresh_keeps_the_credentials_and_is_not_retried_per_request(
    wire: BedrockWire, minutes_left: int
) -> None:
    expiry = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    attempts: list[int] = []

    def refresh() -> dict[str, str]:
        attempts.append(1)
        raise RuntimeError("the metadata service is down")

    credentials = RefreshableCredentials(
        "AKID1",
        "s1",
        "t1",
        expiry,
        refresh,
        "test",
        time_fetcher=lambda: now[0],
    )
    now = [expiry - datetime.timedelta(hours=1)]

    async def three_calls(bedrock: BedrockProvider) -> None:
        await bedrock.complete(call())
        now[0] = expiry - datetime.timedelta(minutes=minutes_left)
        for _ in range(3):
            await bedrock.complete(call())

    run(provider(wire, AwsCredentials(lambda: credentials, retry_s=60)), three_calls)

    keys = [SIGNATURE.fullmatch(r.headers["authorization"])["key"] for r in wire.requests]  # type: ignore[index]
    assert keys == ["AKID1"] * 4  # still valid: botocore refreshes 10-15 min before expiry
    assert len(attempts) == 1


def test_no_credentials_at_all_refuse_without_calling_bedrock(wire: BedrockWire) -> None:
    with pytest.raises(CredentialsRefused, match="no usable AWS credentials"):
        run(provider(wire, AwsCredentials(lambda: None)), lambda b: b.complete(call()))
    assert wire.requests == []


AMZN_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "ThrottlingException", RateLimited),
        (503, "ServiceUnavailableException", BadGateway),
        (500, "InternalServerException", BadGateway),
        (429, "ModelNotReadyException", BadGateway),
        (408, "ModelTimeoutException", UpstreamTimeout),
        (400, "ValidationException", UpstreamRejected),
        (403, "AccessDeniedException", AccessDenied),  # per model or request: no trip
        (403, "UnrecognizedClientException", CredentialsRefused),
        (424, "ModelErrorException", UpstreamRejected),
    ],
)
def test_bedrock_error_types_map_to_the_gateways_errors(
    wire: BedrockWire, status: int, code: str, kind: type[UpstreamError]
) -> None:
    headers = {"x-amzn-ErrorType": code + AMZN_SUFFIX}
    wire.enqueue(Reply(status, {"message": "said bedrock"}, headers))

    with pytest.raises(UpstreamError) as caught:
        run(provider(wire), lambda b: b.complete(call()))

    assert type(caught.value) is kind
    assert caught.value.upstream_status == status
    assert code in caught.value.message
    if kind is not CredentialsRefused:
        assert caught.value.message == f"bedrock: {code}: said bedrock"


def test_an_error_type_only_in_the_body_is_read_too(wire: BedrockWire) -> None:
    body = {"__type": "com.amazon.coral.service#ThrottlingException", "Message": "slow down"}
    wire.enqueue(Reply(400, body))

    with pytest.raises(RateLimited, match="bedrock: ThrottlingException: slow down"):
        run(provider(wire), lambda b: b.complete(call()))


def test_a_slow_answer_is_a_sent_timeout_and_a_closed_port_is_unavailable(
    wire: BedrockWire,
) -> None:
    wire.enqueue(Reply(200, {"never": "read"}, delay_s=5))
    with pytest.raises(SentTimeout, match="within 0.3 s"):
        run(provider(wire), lambda b: b.complete(call(timeout_s=0.3)))

    closed = provider(wire, AWS_ENDPOINT_URL_BEDROCK_RUNTIME=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        run(closed, lambda b: b.complete(call()))


def test_count_tokens_sends_the_invoke_body_for_the_foundation_model(wire: BedrockWire) -> None:
    counted = run(provider(wire), lambda b: b.count_tokens(call()))

    assert counted == {"input_tokens": BedrockWire.INPUT_TOKENS}
    [request] = wire.requests
    assert request.path == "/model/anthropic.claude-test-v1%3A0/count-tokens"  # no "us."
    invoke_body = json.loads(base64.b64decode(request.body["input"]["invokeModel"]["body"]))
    assert invoke_body["anthropic_version"] == "bedrock-2023-05-31"
    assert invoke_body["messages"] == BODY["messages"]
    assert "stream" not in invoke_body


def test_count_tokens_estimates_where_bedrock_cannot_count(wire: BedrockWire) -> None:
    headers = {"x-amzn-ErrorType": "ValidationException" + AMZN_SUFFIX}
    wire.enqueue(Reply(400, {"message": "The model does not support counting tokens"}, headers))

    counted = run(provider(wire), lambda b: b.count_tokens(call()))

    assert counted["estimate"] is True and counted["input_tokens"] > 0


def test_the_endpoint_follows_botocores_variables() -> None:
    def endpoint(**env: str) -> str:
        return BedrockProvider(env, credentials=static()).endpoint

    assert endpoint(AWS_REGION="eu-west-3") == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    assert endpoint(AWS_DEFAULT_REGION="ap-south-1").endswith(".ap-south-1.amazonaws.com")
    assert endpoint(AWS_ENDPOINT_URL="http://global:1/") == "http://global:1"
    specific = {
        "AWS_ENDPOINT_URL": "http://global:1",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://b:2",
    }
    assert endpoint(**specific) == "http://b:2"
    ignored = {**specific, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_REGION": "us-west-2"}
    assert endpoint(**ignored) == "https://bedrock-runtime.us-west-2.amazonaws.com"
