"""Each provider answers through the gateway, with the real anthropic SDK as the client."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic
from tests.fakes.bedrock import FakeBedrock, anthropic_message
from tests.gateway.support import (
    ANTHROPIC_MODEL,
    BEDROCK_MODEL,
    CALCULATOR_TOOL,
    LOCAL_MODEL,
    SEARCH_TOOL,
    ServedGateway,
    StartGateway,
    user,
)
from tests.lazy_imports import anthropic

if TYPE_CHECKING:  # the SDK loads when a test first uses it (tests/lazy_imports.py)
    from anthropic.types import ContentBlockParam


def create(client: anthropic.Anthropic, route: str, text: str, **options: Any) -> Any:
    return client.messages.with_raw_response.create(
        model=route, max_tokens=256, messages=user(text), **options
    )


def test_anthropic_answers_with_the_routes_model_and_the_key(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    raw = create(gateway.sdk(), "anthropic", "hello anthropic")
    message = raw.parse()

    assert message.content[0].text == "fake-anthropic answer to: hello anthropic"
    assert message.model == ANTHROPIC_MODEL  # the deployment's model, not the route's name
    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert raw.headers["x-gateway-deployment"] == f"anthropic:{ANTHROPIC_MODEL}"
    assert (raw.headers["x-gateway-attempts"], raw.headers["x-gateway-fallbacks"]) == ("1", "0")
    [sent] = fake_anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == ANTHROPIC_MODEL
    assert sent.api_key == fake_anthropic.api_key  # the provider key, never the gateway's
    assert "anthropic-version" in sent.headers
    assert sent.body["messages"] == user("hello anthropic")
    assert sent.body["stream"] is False


def test_anthropic_is_first_on_the_default_route(
    full_gateway: ServedGateway, fake_anthropic: FakeAnthropic, fake_bedrock: FakeBedrock
) -> None:
    raw = create(full_gateway.sdk(), "default", "who answers?")

    assert raw.headers["x-gateway-provider"] == "anthropic"
    assert len(fake_anthropic.requests) == 1
    assert fake_bedrock.requests == []


def test_bedrock_gets_the_model_id_and_the_bedrock_body(
    full_gateway: ServedGateway, fake_bedrock: FakeBedrock
) -> None:
    raw = create(full_gateway.sdk(), "bedrock", "hello bedrock", system="Be brief.")
    message = raw.parse()

    assert message.content[0].text == "fake-bedrock answer to: hello bedrock"
    assert raw.headers["x-gateway-provider"] == "bedrock"
    assert raw.headers["x-gateway-deployment"] == f"bedrock:{BEDROCK_MODEL}"
    [sent] = fake_bedrock.requests
    assert sent.model_id == BEDROCK_MODEL
    assert sent.body["anthropic_version"] == "bedrock-2023-05-31"
    assert sent.body["messages"] == user("hello bedrock")
    assert sent.body["system"] == "Be brief."
    # Bedrock rejects these: the model is in the URL, and streams are rendered by the gateway.
    assert "model" not in sent.body and "stream" not in sent.body
    assert (sent.content_type, sent.accept) == ("application/json", "application/json")


def test_bedrock_relays_tool_use_blocks(
    full_gateway: ServedGateway, fake_bedrock: FakeBedrock
) -> None:
    block = {
        "type": "tool_use",
        "id": "toolu_b1",
        "name": "calculator",
        "input": {"expression": "1+1"},
    }
    fake_bedrock.enqueue(anthropic_message([block], stop_reason="tool_use"))

    message = create(full_gateway.sdk(), "bedrock", "1+1?", tools=[CALCULATOR_TOOL]).parse()

    assert message.stop_reason == "tool_use"
    assert message.content[0].input == {"expression": "1+1"}
    assert fake_bedrock.requests[0].body["tools"] == [CALCULATOR_TOOL]


def test_anthropic_relays_tool_use_blocks(
    gateway: ServedGateway, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Answer.tool_use("search", {"query": "circuit breaker"}, tool_id="toolu_1")
    )

    message = create(gateway.sdk(), "anthropic", "look it up", tools=[SEARCH_TOOL]).parse()

    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert (block.id, block.name, block.input) == (
        "toolu_1",
        "search",
        {"query": "circuit breaker"},
    )
    assert fake_anthropic.requests[0].body["tools"] == [SEARCH_TOOL]


def test_with_no_credentials_the_default_route_answers_from_local(
    start_gateway: StartGateway,
) -> None:
    gateway = start_gateway()

    raw = create(gateway.sdk(), "default", "hello")
    message = raw.parse()

    assert raw.headers["x-gateway-provider"] == "local"
    assert raw.headers["x-gateway-deployment"] == f"local:{LOCAL_MODEL}"
    # Unconfigured providers are skipped, not tried: no attempts, no fallbacks counted.
    assert (raw.headers["x-gateway-attempts"], raw.headers["x-gateway-fallbacks"]) == ("1", "0")
    assert message.model == LOCAL_MODEL
    assert message.content[0].text.startswith(MARK)
    assert "cannot answer open questions" in message.content[0].text
    configured = {d["provider"]: d["configured"] for d in gateway.providers()["deployments"]}
    assert configured == {"anthropic": False, "bedrock": False, "local": True}


def test_tool_use_round_trip_with_the_local_model(start_gateway: StartGateway) -> None:
    client = start_gateway().sdk()
    question = user("What is 12*(3+4)?")

    first = client.messages.create(
        model="default", max_tokens=256, messages=question, tools=[CALCULATOR_TOOL, SEARCH_TOOL]
    )

    assert first.stop_reason == "tool_use"
    [tool_use] = [b for b in first.content if b.type == "tool_use"]
    assert tool_use.name == "calculator"
    assert tool_use.input == {"expression": "12*(3+4)"}

    result = {"result": {"expression": "12*(3+4)", "value": 84}}
    final = client.messages.create(
        model="default",
        max_tokens=256,
        tools=[CALCULATOR_TOOL, SEARCH_TOOL],
        messages=[
            *question,
            # model_dump() is each block's wire JSON, typed by pydantic as a plain dict.
            {
                "role": "assistant",
                "content": cast("list[ContentBlockParam]", [b.model_dump() for b in first.content]),
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": json.dumps(result),
                    }
                ],
            },
        ],
    )

    assert final.stop_reason == "end_turn"
    [text] = final.content
    assert text.type == "text"
    assert "12*(3+4) = 84" in text.text
