"""Retries, fallback, the deadline and circuit breakers, seen by a client of the gateway."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, Disconnect, FakeAnthropic, Fault
from tests.fakes.bedrock import BedrockFault, FakeBedrock
from tests.gateway.support import (
    ANTHROPIC,
    ANTHROPIC_MODEL,
    BEDROCK,
    BEDROCK_MODEL,
    LOCAL,
    ServedGateway,
    StartGateway,
    error_of,
    user,
    wait_until,
)
from tests.lazy_imports import anthropic

ANTHROPIC_DEPLOYMENT = f"anthropic:{ANTHROPIC_MODEL}"


def create(gateway: ServedGateway, route: str, text: str = "hello") -> Any:
    return gateway.sdk().messages.with_raw_response.create(
        model=route, max_tokens=128, messages=user(text)
    )


def outcome(headers: Any) -> tuple[str, str, str]:
    return (
        headers["x-gateway-provider"],
        headers["x-gateway-attempts"],
        headers["x-gateway-fallbacks"],
    )


# -- retries -----------------------------------------------------------------------------------


def test_overloaded_then_ok_is_retried(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(529))

    raw = create(gateway, "anthropic", "try again")

    assert raw.parse().content[0].text == "fake-anthropic answer to: try again"
    assert outcome(raw.headers) == ("anthropic", "2", "0")
    assert len(fake_anthropic.requests) == 2


def test_connection_drop_is_retried(gateway: ServedGateway, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Disconnect())

    raw = create(gateway, "anthropic")

    assert outcome(raw.headers) == ("anthropic", "2", "0")


@pytest.mark.parametrize(
    ("fault", "at_least_s"),
    [
        (Fault(429, retry_after_ms=150), 0.14),
        (Fault(429, retry_after=0.2), 0.19),
        (Fault(529, retry_after_ms=120), 0.11),
    ],
    ids=["retry-after-ms", "retry-after", "overloaded-retry-after-ms"],
)
def test_retry_after_is_honoured(
    gateway: ServedGateway,
    fake_anthropic: FakeAnthropic,
    fault: Fault,
    at_least_s: float,
) -> None:
    fake_anthropic.enqueue(fault)

    raw = create(gateway, "anthropic")

    assert outcome(raw.headers) == ("anthropic", "2", "0")
    first, second = (request.received_at for request in fake_anthropic.requests)
    # This config's own backoff is at most 10 ms: a longer gap is the upstream's retry-after.
    assert second - first >= at_least_s


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_each_attempt_is_logged_with_provider_error_class_and_wait(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(529))
    captured = _Records()
    logger = logging.getLogger("agentorch.gateway.router")
    logger.addHandler(captured)
    try:
        create(gateway, "anthropic")
    finally:
        logger.removeHandler(captured)

    failed, succeeded = captured.records
    assert failed.getMessage() == "upstream attempt failed"
    assert failed.deployment.startswith("anthropic:")  # type: ignore[attr-defined]
    assert (failed.error_class, failed.upstream_status) == ("Overloaded", 529)  # type: ignore[attr-defined]
    assert failed.next == "retry" and 0 <= failed.wait_s <= 0.01  # type: ignore[attr-defined]
    assert succeeded.getMessage() == "upstream attempt ok"
    assert succeeded.attempt == 2  # type: ignore[attr-defined]


def test_bedrock_throttle_is_retried_by_the_gateway_not_by_boto3(
    full_gateway: ServedGateway, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.enqueue(BedrockFault("ThrottlingException"))

    raw = create(full_gateway, "bedrock")

    assert outcome(raw.headers) == ("bedrock", "2", "0")
    assert len(fake_bedrock.requests) == 2  # one call per gateway attempt


def test_retry_after_longer_than_honoured_falls_back_at_once(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(429, retry_after=30))  # max_retry_after_s is 1 in the config
    started = time.monotonic()

    raw = create(gateway, "anthropic-then-local")

    assert time.monotonic() - started < 5  # did not wait the 30 s
    assert outcome(raw.headers) == ("local", "2", "1")
    assert len(fake_anthropic.requests) == 1


def test_retries_exhausted_returns_the_last_error_with_headers(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(503, message="down for maintenance"), Fault(503))

    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway, "anthropic")

    assert caught.value.status_code == 502  # the upstream failed, not the gateway
    error = error_of(caught.value)
    assert error["type"] == "api_error"
    assert "anthropic: fake-anthropic scripted 503" in error["message"]
    headers = caught.value.response.headers
    assert (headers["x-gateway-attempts"], headers["x-gateway-fallbacks"]) == ("2", "0")
    assert headers["x-request-id"]
    assert len(fake_anthropic.requests) == 2


# -- fallback ----------------------------------------------------------------------------------


def test_fallback_anthropic_then_bedrock_then_local(
    start_gateway: StartGateway,
    anthropic_env: FakeAnthropic,
    fake_bedrock: FakeBedrock,
) -> None:
    route = {"deployments": [ANTHROPIC, BEDROCK, LOCAL], "fallback_to_local": True}
    gateway = start_gateway({"routes": {"default": route}})
    fake_anthropic = anthropic_env
    fake_anthropic.enqueue(Fault(500), Fault(500))
    fake_bedrock.enqueue(BedrockFault("ThrottlingException"), BedrockFault("ThrottlingException"))
    sample_fallbacks = 'gateway_fallbacks_total{route="default"}'
    sample_failures = (
        f'gateway_upstream_attempts_total{{deployment="{ANTHROPIC_DEPLOYMENT}",'
        'outcome="BadGateway"}'
    )
    fallbacks_before = gateway.metric(sample_fallbacks)
    failures_before = gateway.metric(sample_failures)

    raw = create(gateway, "default", "anyone there?")

    assert raw.parse().content[0].text.startswith(MARK)
    assert outcome(raw.headers) == ("local", "5", "2")  # 2 anthropic + 2 bedrock + 1 local
    assert len(fake_anthropic.requests) == 2
    assert len(fake_bedrock.requests) == 2  # the provider has no retries of its own
    assert gateway.metric(sample_fallbacks) == fallbacks_before + 2
    assert gateway.metric(sample_failures) == failures_before + 2


def test_an_outage_on_default_is_the_upstreams_failure_never_a_local_answer(
    full_gateway: ServedGateway, fake_anthropic: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    fake_anthropic.enqueue(Fault(500), Fault(500))
    fake_bedrock.enqueue(BedrockFault("ThrottlingException"), BedrockFault("ThrottlingException"))

    with pytest.raises(anthropic.RateLimitError) as caught:
        create(full_gateway, "default", "anyone there?")

    assert "ThrottlingException" in error_of(caught.value)["message"]
    assert outcome(caught.value.response.headers) == ("none", "4", "1")
    assert len(fake_anthropic.requests) == 2 and len(fake_bedrock.requests) == 2


def test_fallback_stops_at_the_first_deployment_that_answers(
    full_gateway: ServedGateway, fake_anthropic: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    fake_anthropic.enqueue(Fault(529), Fault(529))

    raw = create(full_gateway, "default", "bedrock please")

    assert raw.parse().content[0].text == "fake-bedrock answer to: bedrock please"
    assert outcome(raw.headers) == ("bedrock", "3", "1")


def test_a_second_anthropic_endpoint_takes_over(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    with FakeAnthropic() as second_region:
        regions = [
            {**ANTHROPIC, "max_attempts": 1},
            {**ANTHROPIC, "base_url": second_region.base_url},
        ]
        gateway = start_gateway({"routes": {"regions": regions}})
        anthropic_env.enqueue(Fault(529))

        raw = create(gateway, "regions", "hi")

        assert raw.parse().content[0].text == "fake-anthropic answer to: hi"
        assert outcome(raw.headers) == ("anthropic", "2", "1")  # max_attempts 1: no retry
        deployment = f"anthropic:{ANTHROPIC_MODEL}@{second_region.base_url}"
        assert raw.headers["x-gateway-deployment"] == deployment
        assert len(anthropic_env.requests) == 1
        [sent] = second_region.requests
        assert sent.body["model"] == ANTHROPIC_MODEL
        assert sent.api_key == second_region.api_key


def test_every_deployment_failing_is_an_error_naming_the_last_failure(
    full_gateway: ServedGateway, fake_anthropic: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    fake_anthropic.enqueue(Fault(500), Fault(500))
    fake_bedrock.enqueue(*[BedrockFault("ServiceUnavailableException", "bedrock is down")] * 2)

    with pytest.raises(anthropic.APIStatusError) as caught:
        create(full_gateway, "anthropic-then-bedrock")

    assert caught.value.status_code == 502  # the upstream failed: bad gateway, as for anthropic
    assert (
        "bedrock: ServiceUnavailableException: bedrock is down" in error_of(caught.value)["message"]
    )
    headers = caught.value.response.headers
    assert (headers["x-gateway-attempts"], headers["x-gateway-fallbacks"]) == ("4", "1")


def test_no_configured_provider_is_503(start_gateway: StartGateway) -> None:
    gateway = start_gateway()  # no anthropic key, no AWS credentials

    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway, "anthropic")

    assert caught.value.status_code == 503
    assert "no provider in its chain is configured" in error_of(caught.value)["message"]


# -- non-retryable errors ----------------------------------------------------------------------


def test_bad_request_upstream_is_returned_once_without_fallback(
    full_gateway: ServedGateway, fake_anthropic: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    fake_anthropic.enqueue(Fault(400, message="messages.0.content: image too large"))

    with pytest.raises(anthropic.BadRequestError) as caught:
        create(full_gateway, "default")

    error = error_of(caught.value)
    assert error["type"] == "invalid_request_error"
    assert "image too large" in error["message"]
    headers = caught.value.response.headers
    assert (headers["x-gateway-attempts"], headers["x-gateway-fallbacks"]) == ("1", "0")
    assert len(fake_anthropic.requests) == 1
    assert fake_bedrock.requests == []


STAYS_OPEN = {"circuit": {"cooldown_s": 60}}
"""An opened circuit that cannot cool down mid-test (the base config's 0.5 s could, under load)."""


def test_upstream_refusing_the_gateways_key_is_a_502_never_a_401(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = start_gateway(STAYS_OPEN, ANTHROPIC_API_KEY="not-the-fake-key")

    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway, "anthropic")

    assert caught.value.status_code == 502  # a 401 would tell the client its own key is bad
    error = error_of(caught.value)
    assert error["type"] == "api_error"
    assert "anthropic" in error["message"] and "invalid x-api-key" in error["message"]
    assert caught.value.response.headers["x-gateway-attempts"] == "1"  # not retried
    assert len(anthropic_env.requests) == 1
    assert gateway.deployment(ANTHROPIC_DEPLOYMENT)["circuit"] == "open"


def test_refused_gateway_credentials_fall_back_to_the_next_deployment(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = start_gateway(STAYS_OPEN, ANTHROPIC_API_KEY="not-the-fake-key")

    raw = create(gateway, "anthropic-then-local")

    assert outcome(raw.headers) == ("local", "2", "1")
    # The circuit is open: the next request does not even try the refused key.
    create(gateway, "anthropic-then-local")
    assert len(anthropic_env.requests) == 1


def test_bedrock_validation_error_is_400_without_retry(
    full_gateway: ServedGateway, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.enqueue(BedrockFault("ValidationException", "max_tokens exceeds the model limit"))

    with pytest.raises(anthropic.BadRequestError) as caught:
        create(full_gateway, "bedrock-then-local")

    message = error_of(caught.value)["message"]
    assert "ValidationException" in message and "max_tokens exceeds" in message
    assert caught.value.response.headers["x-gateway-attempts"] == "1"
    assert len(fake_bedrock.requests) == 1


# -- the deadline ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["anthropic", "anthropic-then-local"])
def test_deadline_ends_a_slow_request_with_504(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic, route: str
) -> None:
    gateway = start_gateway({"deadline_s": 0.5})
    anthropic_env.enqueue(Answer.text("too late", delay_s=5), Answer.text("too late", delay_s=5))
    client = gateway.sdk()
    started = time.monotonic()

    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=route, max_tokens=64, messages=user("slow"))
    elapsed = time.monotonic() - started

    assert caught.value.status_code == 504
    error = error_of(caught.value)
    assert error["type"] == "timeout_error"
    assert "0.5 s deadline" in error["message"]
    # One budget for everything: no retry, and no fallback to local, after it ran out.
    assert caught.value.response.headers["x-gateway-attempts"] == "1"
    assert 0.45 <= elapsed < 2.0
    assert len(anthropic_env.requests) == 1


# -- circuit breakers --------------------------------------------------------------------------


def breaker_gateway(start_gateway: StartGateway, cooldown_s: float) -> ServedGateway:
    """A gateway whose circuits open after two failures (one attempt per request)."""
    return start_gateway(
        {
            "retry": {"max_attempts": 1},
            "circuit": {"failure_threshold": 2, "cooldown_s": cooldown_s},
        }
    )


def open_the_circuit(gateway: ServedGateway, fake: FakeAnthropic, cools_soon: bool = False) -> None:
    """Two failures open the circuit. With a short cool-down (``cools_soon``) a loaded machine
    may already see it half-open, which a circuit only becomes after it was open."""
    fake.enqueue(Fault(500), Fault(500))
    for _ in range(2):
        assert create(gateway, "anthropic-then-local").headers["x-gateway-provider"] == "local"
    status = gateway.deployment(ANTHROPIC_DEPLOYMENT)
    assert status["circuit"] in ({"open", "half_open"} if cools_soon else {"open"})
    assert status["failures"] == 2
    assert "BadGateway" in status["last_error"]


def test_open_circuit_skips_the_deployment(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = breaker_gateway(start_gateway, cooldown_s=30)  # cannot cool down mid-test
    fake_anthropic = anthropic_env
    open_the_circuit(gateway, fake_anthropic)

    raw = create(gateway, "anthropic-then-local")

    assert raw.headers["x-gateway-provider"] == "local"
    assert raw.headers["x-gateway-attempts"] == "1"  # anthropic was not even tried
    assert len(fake_anthropic.requests) == 2
    with pytest.raises(anthropic.APIStatusError) as caught:
        create(gateway, "anthropic")
    assert caught.value.status_code == 503
    assert "circuit open" in error_of(caught.value)["message"]
    assert len(fake_anthropic.requests) == 2


def half_open_gateway(
    start_gateway: StartGateway, fake: FakeAnthropic, cooldown_s: float = 0.5
) -> ServedGateway:
    """A breaker gateway whose anthropic circuit was opened and has cooled down to half-open."""
    gateway = breaker_gateway(start_gateway, cooldown_s=cooldown_s)
    open_the_circuit(gateway, fake, cools_soon=True)
    wait_until(
        lambda: gateway.deployment(ANTHROPIC_DEPLOYMENT)["circuit"] == "half_open",
        what="the circuit to cool down",
    )
    return gateway


def test_circuit_closes_after_cooldown_when_the_trial_succeeds(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    fake_anthropic = anthropic_env
    gateway = half_open_gateway(start_gateway, fake_anthropic)

    raw = create(gateway, "anthropic-then-local", "trial")

    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert len(fake_anthropic.requests) == 3
    status = gateway.deployment(ANTHROPIC_DEPLOYMENT)
    assert (status["circuit"], status["successes"]) == ("closed", 1)
    assert status["last_latency_ms"] is not None and status["last_latency_ms"] > 0


def test_failed_trial_opens_the_circuit_again(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    fake_anthropic = anthropic_env
    # Served, the clock is real: the cool-down must outlast two requests on a loaded machine.
    # (test_router_unit.py pins the same with a fake clock.)
    gateway = half_open_gateway(start_gateway, fake_anthropic, cooldown_s=3)
    fake_anthropic.enqueue(Fault(500))

    assert create(gateway, "anthropic-then-local").headers["x-gateway-provider"] == "local"
    assert gateway.deployment(ANTHROPIC_DEPLOYMENT)["circuit"] == "open"
    assert create(gateway, "anthropic-then-local").headers["x-gateway-attempts"] == "1"
    assert len(fake_anthropic.requests) == 3  # the one trial only


def test_bedrock_answering_something_that_is_no_message_falls_back(
    full_gateway: ServedGateway, fake_bedrock: FakeBedrock
) -> None:
    fake_bedrock.enqueue(*[["not", "a", "message"]] * 3)  # type: ignore[arg-type]  # no message, on purpose

    raw = create(full_gateway, "bedrock-then-local")

    assert outcome(raw.headers)[0] == "local"
    bedrock = full_gateway.deployment(f"bedrock:{BEDROCK_MODEL}")
    assert "not a JSON message" in str(bedrock["last_error"])


def test_a_final_429_passes_the_upstream_retry_after_on(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(429, retry_after=30))  # longer than honoured: no retry

    with pytest.raises(anthropic.RateLimitError) as caught:
        create(gateway, "anthropic")

    assert caught.value.response.headers["retry-after"] == "30"
