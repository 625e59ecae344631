"""The gateway as Anthropic clients really use it, through the real ``anthropic`` SDK: Claude
Code's first request, betas, real model ids, token counting, models, headers, retries that do
not stack, credentials refused upstream, and streams that end honestly."""

from __future__ import annotations

import base64
import importlib.metadata
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault, Reply
from tests.fakes.bedrock import BedrockFault, FakeBedrock
from tests.fakes.server import Exchange, FakeServer, RecordedRequest
from tests.gateway.support import (
    ANTHROPIC,
    ANTHROPIC_MODEL,
    BEDROCK,
    ServedGateway,
    StartGateway,
    error_of,
    user,
)
from tests.lazy_imports import anthropic

if TYPE_CHECKING:  # the SDK loads when a test first uses it (tests/lazy_imports.py)
    from anthropic.types.beta import BetaMessageParam

ALIASES = {
    "claude-sonnet-4-5-20250929": "anthropic",
    "claude-*haiku*": "local",
    "claude-*": "anthropic",
}
CLAUDE_CODE_BETAS = [
    "claude-code-20250219",
    "context-1m-2025-08-07",
    "interleaved-thinking-2025-05-14",
    "thinking-token-count-2026-05-13",
    "context-management-2025-06-27",
    "prompt-caching-scope-2026-01-05",
    "mid-conversation-system-2026-04-07",
    "effort-2025-11-24",
]
CLAUDE_CODE_TOOLS = [
    "Agent",
    "Bash",
    "CronCreate",
    "CronDelete",
    "CronList",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "ScheduleWakeup",
    "SendMessage",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
]


def claude_code_request() -> dict[str, Any]:
    """The shape of Claude Code 2.1's first request (``claude -p "What is 17 * 23?"``), as
    recorded from it: a real model id, a system turn mid-conversation under its beta, adaptive
    thinking, output_config, context_management, cache_control, 24 tools."""
    reminder = "<system-reminder>\nToday's date is 2026-12-01.\n</system-reminder>\n\n"
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 64000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197;"},
            {
                "type": "text",
                "text": "You are a Claude agent.",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": reminder},
                    {
                        "type": "text",
                        "text": "What is 17 * 23?",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
            {"role": "system", "content": "Available agent types for the Agent tool: claude"},
        ],
        "tools": [
            {
                "name": name,
                "description": f"The {name} tool.",
                "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
            }
            for name in CLAUDE_CODE_TOOLS
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": '{"session_id":"f9b20324"}'},
    }


def stream_text(client: anthropic.Anthropic, body: dict[str, Any], **options: Any) -> str:
    with client.beta.messages.stream(**body, **options) as stream:
        return "".join(stream.text_stream)


@pytest.fixture
def aliased(start_gateway: StartGateway, anthropic_env: FakeAnthropic) -> ServedGateway:
    return start_gateway({"aliases": ALIASES})


# -- Claude Code, and passing through what the gateway does not need --------------------------


def test_claude_codes_first_request_is_answered_offline(start_gateway: StartGateway) -> None:
    gateway = start_gateway({"aliases": {"claude-*": "default"}})  # no key: default is local

    text = stream_text(gateway.sdk(), claude_code_request(), betas=CLAUDE_CODE_BETAS)

    # None of Claude Code's tools is a calculator: the local model does the arithmetic itself.
    assert text == f"{MARK} 17 * 23 = 391"


def test_claude_codes_first_request_reaches_the_upstream_as_sent(
    aliased: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    body = claude_code_request()

    text = stream_text(aliased.sdk(), body, betas=CLAUDE_CODE_BETAS)

    assert text == "fake-anthropic answer to: " + body["messages"][0]["content"][0]["text"] + (
        " What is 17 * 23?"
    )
    [received] = fake_anthropic.requests
    assert received.route == "/v1/messages"
    assert received.body == {**body, "model": ANTHROPIC_MODEL, "stream": True}
    assert received.headers["anthropic-beta"] == ",".join(CLAUDE_CODE_BETAS)


def test_betas_reach_bedrock_in_the_body(
    start_gateway: StartGateway, fake_bedrock: FakeBedrock
) -> None:
    gateway = start_gateway()

    gateway.sdk().beta.messages.create(
        model="bedrock",
        max_tokens=64,
        # The beta API has its own message types; a user turn is the same JSON in both.
        messages=cast("list[BetaMessageParam]", user("hello")),
        betas=["context-management-2025-06-27", "interleaved-thinking-2025-05-14"],
    )

    [invoked] = fake_bedrock.requests
    assert invoked.body["anthropic_beta"] == [
        "context-management-2025-06-27",
        "interleaved-thinking-2025-05-14",
    ]


# -- real model ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "route"),
    [
        ("claude-sonnet-4-5-20250929", "anthropic"),
        ("claude-opus-4-8", "anthropic"),
        ("claude-3-5-haiku-20241022", "local"),
        ("anthropic", "anthropic"),
    ],
)
def test_real_model_ids_reach_their_route(aliased: ServedGateway, model: str, route: str) -> None:
    raw = aliased.sdk().messages.with_raw_response.create(
        model=model, max_tokens=64, messages=user("hello")
    )

    assert raw.headers["x-gateway-route"] == route
    assert raw.headers["x-gateway-provider"] == route


def test_an_unknown_model_is_404_not_found_listing_the_routes(aliased: ServedGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        aliased.sdk().messages.create(model="gpt-4", max_tokens=8, messages=user("x"))

    error = error_of(caught.value)
    assert error["type"] == "not_found_error"
    assert "'gpt-4'" in error["message"] and "anthropic-then-local" in error["message"]


# -- token counting and models ----------------------------------------------------------------


def test_count_tokens_asks_anthropic_for_its_deployment(
    aliased: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    client = aliased.sdk()

    counted = client.beta.messages.count_tokens(
        model="claude-sonnet-4-5-20250929",
        messages=cast("list[BetaMessageParam]", user("three words here")),  # as above
        betas=["context-management-2025-06-27"],
    )

    [received] = fake_anthropic.requests
    assert received.route == "/v1/messages/count_tokens"
    assert received.body["model"] == ANTHROPIC_MODEL
    assert "context-management-2025-06-27" in received.headers["anthropic-beta"]
    # The fake counts the words of the messages' JSON: its count came back unchanged.
    assert counted.input_tokens == len(json.dumps(received.body["messages"]).split())


def test_count_tokens_offline_is_a_labelled_deterministic_estimate(
    start_gateway: StartGateway,
) -> None:
    client = start_gateway().sdk()

    first = client.messages.with_raw_response.count_tokens(
        model="local", messages=user("What is 17 * 23?")
    )
    again = client.messages.count_tokens(model="local", messages=user("What is 17 * 23?"))
    longer = client.messages.count_tokens(model="local", messages=user("What is 17 * 23?" * 50))

    assert first.headers["x-gateway-token-count"] == "estimate"
    assert first.parse().input_tokens == again.input_tokens > 0
    assert longer.input_tokens > again.input_tokens


def test_models_lists_routes_and_aliases_in_pages(aliased: ServedGateway) -> None:
    client = aliased.sdk()

    every = [model.id for model in client.models.list(limit=2)]  # the SDK follows the pages
    first_page = client.models.list(limit=2)

    assert every[:2] == ["default", "anthropic"]
    assert "claude-sonnet-4-5-20250929" in every and "claude-*" not in every
    assert len(every) == len(set(every))
    assert [m.id for m in first_page.data] == every[:2] and first_page.has_more


def test_models_retrieve_knows_any_id_an_alias_serves(aliased: ServedGateway) -> None:
    client = aliased.sdk()

    model = client.models.retrieve("claude-opus-4-8")

    assert (model.id, model.type) == ("claude-opus-4-8", "model")
    assert "route anthropic" in model.display_name
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("gpt-4")


# -- headers ----------------------------------------------------------------------------------


def test_the_upstreams_request_id_and_rate_limits_come_back(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    limits = {"request-id": "req_upstream_1", "anthropic-ratelimit-requests-remaining": "41"}
    fake_anthropic.enqueue(Reply(200, message, limits))

    raw = gateway.sdk().messages.with_raw_response.create(
        model="anthropic", max_tokens=64, messages=user("hello")
    )

    assert raw.request_id == "req_upstream_1" != raw.headers["x-request-id"]
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "41"


def test_an_answer_not_from_upstream_carries_the_gateways_own_request_id(
    start_gateway: StartGateway,
) -> None:
    message = (
        start_gateway().sdk().messages.create(model="local", max_tokens=64, messages=user("hi"))
    )

    raw = (
        start_gateway()
        .sdk()
        .messages.with_raw_response.create(model="local", max_tokens=64, messages=user("hi"))
    )
    # The gateway's own id (functions-framework's execution id), as its x-request-id says.
    assert message._request_id and not message._request_id.startswith("req_upstream")
    assert raw.request_id == raw.headers["x-request-id"] != message._request_id


def test_upstream_sees_one_content_type_and_the_callers_user_agent(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    gateway.sdk().messages.create(model="anthropic", max_tokens=64, messages=user("hello"))

    [received] = fake_anthropic.requests
    assert received.headers["content-type"] == "application/json"
    version = importlib.metadata.version("anthropic")
    assert received.headers["user-agent"].startswith(f"Anthropic/Python {version}")
    assert received.headers["user-agent"].endswith("agent-orchestrator-gateway/0.1")
    assert "x-api-key" in received.headers and received.api_key == fake_anthropic.api_key


# -- retries that do not stack ----------------------------------------------------------------


def test_the_sdks_own_retries_do_not_multiply_the_gateways(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(*[Fault(529) for _ in range(9)])
    client = gateway.sdk(max_retries=2)  # the SDK would retry a 529 twice

    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="anthropic", max_tokens=64, messages=user("hello"))

    assert caught.value.status_code == 529
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(fake_anthropic.requests) == 2  # the gateway's 2 attempts, not 2 x 3


def test_a_long_retry_after_is_passed_back_with_its_wait(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Fault(429, retry_after=30))

    with pytest.raises(anthropic.RateLimitError) as caught:
        gateway.sdk().messages.create(model="anthropic", max_tokens=64, messages=user("hello"))

    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["x-should-retry"]) == ("30", "false")
    assert len(fake_anthropic.requests) == 1  # a wait beyond the cap is not waited out


@pytest.mark.parametrize(("retry", "calls"), [(True, 2), (False, 1)])
def test_a_timeout_after_sending_is_retried_only_where_the_route_allows(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic, retry: bool, calls: int
) -> None:
    route = {"deployments": [{**ANTHROPIC, "timeout_s": 0.3}], "retry_sent_timeouts": retry}
    gateway = start_gateway({"routes": {"slow": route}})
    anthropic_env.enqueue(Answer.text("late", delay_s=2), Answer.text("late", delay_s=2))

    with pytest.raises(anthropic.APIStatusError) as caught:
        gateway.sdk().messages.create(model="slow", max_tokens=64, messages=user("hello"))

    assert caught.value.status_code == 504
    assert len(anthropic_env.requests) == calls


# -- the gateway's own credentials refused ----------------------------------------------------


def test_refused_credentials_fall_back_and_open_that_deployments_circuit(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    gateway = start_gateway(
        {"routes": {"both": [ANTHROPIC, BEDROCK]}, "circuit": {"cooldown_s": 60}},
        ANTHROPIC_API_KEY="not-the-fake-key",
    )

    first = gateway.sdk().messages.with_raw_response.create(
        model="both", max_tokens=64, messages=user("hello")
    )
    second = gateway.sdk().messages.with_raw_response.create(
        model="both", max_tokens=64, messages=user("hello")
    )

    assert first.headers["x-gateway-provider"] == "bedrock"
    assert second.headers["x-gateway-attempts"] == "1"  # anthropic skipped: its circuit is open
    assert len(anthropic_env.requests) == 1
    assert gateway.deployment(f"anthropic:{ANTHROPIC_MODEL}")["circuit"] == "open"


def test_refused_credentials_with_nothing_else_are_a_502_naming_the_provider(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic
) -> None:
    gateway = start_gateway(ANTHROPIC_API_KEY="not-the-fake-key")
    client = gateway.sdk(max_retries=2)

    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="anthropic", max_tokens=64, messages=user("hello"))

    assert caught.value.status_code == 502  # never 401: the client's own key is fine
    message = error_of(caught.value)["message"]
    assert message.startswith("anthropic: refused the gateway's own credentials (HTTP 401)")
    assert len(anthropic_env.requests) == 1


# -- streams that end honestly ----------------------------------------------------------------


def test_a_text_delta_spelling_message_stop_does_not_hide_a_cut_stream(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Answer.text("a\nevent: message_stop\ndata: {}\n\nb", text_pieces=1, cut_after_events=4)
    )

    with pytest.raises(anthropic.APIStatusError) as caught:
        stream_text(gateway.sdk(), {"model": "anthropic", "max_tokens": 64, "messages": user("x")})

    # The client is told the answer is incomplete, though the text spelled the end of a stream.
    assert "the anthropic stream broke after it began" in str(caught.value)


def test_an_upstream_error_event_after_a_200_reaches_the_client(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Answer.text("partial answer", error_after_events=4))

    with pytest.raises(anthropic.APIStatusError) as caught:
        stream_text(gateway.sdk(), {"model": "anthropic", "max_tokens": 64, "messages": user("x")})

    assert "overloaded_error" in str(caught.value.body) or "overloaded" in str(caught.value)
    assert len(fake_anthropic.requests) == 1  # mid-stream: no failover, no retry


# -- Bedrock's CountTokens --------------------------------------------------------------------


class FakeCountTokens(FakeServer):
    """Bedrock's ``POST /model/{id}/count-tokens`` (moto does not mock it): the scripted
    ``Reply``, else ``{"inputTokens": 12}``."""

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        item = self.next_scripted() or Reply(200, {"inputTokens": 12})
        exchange.play(item)


PROFILE_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture
def counting_bedrock(
    start_gateway: StartGateway,
) -> Iterator[tuple[ServedGateway, FakeCountTokens]]:
    with FakeCountTokens() as fake:
        route = [{"provider": "bedrock", "model": PROFILE_MODEL, "timeout_s": 3}]
        gateway = start_gateway(
            {"routes": {"bedrock": route}},
            AWS_BEARER_TOKEN_BEDROCK="bedrock-test-token",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=fake.url,
        )
        yield gateway, fake


def test_count_tokens_on_bedrock_asks_its_api_for_the_foundation_model(
    counting_bedrock: tuple[ServedGateway, FakeCountTokens],
) -> None:
    gateway, fake = counting_bedrock

    raw = gateway.sdk().messages.with_raw_response.count_tokens(
        model="bedrock", messages=user("hello there")
    )

    assert raw.parse().input_tokens == 12 and "x-gateway-token-count" not in raw.headers
    [received] = fake.requests
    assert received.route == "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens"
    invoke = json.loads(base64.b64decode(received.body["input"]["invokeModel"]["body"]))
    assert invoke["messages"] == user("hello there") and "anthropic_version" in invoke


def test_count_tokens_where_bedrock_cannot_count_is_a_labelled_estimate(
    counting_bedrock: tuple[ServedGateway, FakeCountTokens],
) -> None:
    gateway, fake = counting_bedrock
    refusal = {"message": "The provided model doesn't support counting tokens"}
    fake.enqueue(Reply(400, refusal, {"x-amzn-ErrorType": "ValidationException:http://x"}))

    raw = gateway.sdk().messages.with_raw_response.count_tokens(
        model="bedrock", messages=user("hello there")
    )

    assert raw.headers["x-gateway-token-count"] == "estimate"
    assert raw.parse().input_tokens > 0


def test_bedrock_denying_access_falls_back_to_anthropic_and_keeps_its_circuit_closed(
    start_gateway: StartGateway, anthropic_env: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    """AccessDenied is per model, or per request under IAM conditions: the route falls back,
    but one caller's request does not take the deployment from everyone."""
    gateway = start_gateway(
        {"routes": {"both": [BEDROCK, ANTHROPIC]}, "circuit": {"cooldown_s": 60}}
    )
    fake_bedrock.enqueue(BedrockFault("AccessDeniedException"))

    raw = gateway.sdk().messages.with_raw_response.create(
        model="both", max_tokens=64, messages=user("hello")
    )

    assert (raw.headers["x-gateway-provider"], raw.headers["x-gateway-fallbacks"]) == (
        "anthropic",
        "1",
    )
    status = gateway.deployment(f"bedrock:{BEDROCK['model']}")
    assert status["circuit"] == "closed"
    assert status["last_error"].startswith("AccessDenied: bedrock: AccessDeniedException")
