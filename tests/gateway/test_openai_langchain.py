"""langchain-openai's ``ChatOpenAI`` with a bound tool against the gateway: on the Responses
API (``use_responses_api=True``), and on its default, Chat Completions; offline through the
local model, and through the fake Anthropic upstream."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic
from tests.gateway.openai_support import gateway_on
from tests.gateway.support import ServedGateway

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

APIS = [
    pytest.param(True, id="responses-api"),
    pytest.param(False, id="chat-completions"),
]


@pytest.fixture(scope="module")
def lc() -> SimpleNamespace:
    """langchain's parts, imported by the worker that runs these tests only: 3 s of CPU that
    every worker would pay to collect the module (tests/lazy_imports.py)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city today."""
        return f"sunny and 21 C in {city}"

    return SimpleNamespace(
        AIMessage=AIMessage,
        HumanMessage=HumanMessage,
        ToolMessage=ToolMessage,
        get_weather=get_weather,
    )


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServedGateway, FakeAnthropic]]:
    with gateway_on(tmp_path_factory.mktemp("langchain")) as both:
        yield both


def chat(gateway: ServedGateway, route: str, responses_api: bool) -> ChatOpenAI:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=route,
        base_url=f"{gateway.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        timeout=10,
        use_responses_api=responses_api,
    )


@pytest.mark.parametrize("responses_api", APIS)
def test_a_bound_tool_is_called_and_its_result_answered_offline(
    served: tuple[ServedGateway, FakeAnthropic], lc: SimpleNamespace, responses_api: bool
) -> None:
    model = chat(served[0], "local", responses_api).bind_tools([lc.get_weather])
    question = lc.HumanMessage("use get_weather for Oslo")
    asked = model.invoke([question])
    assert isinstance(asked, lc.AIMessage)
    [call] = asked.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Oslo"})
    result = lc.ToolMessage(lc.get_weather.invoke(call["args"]), tool_call_id=call["id"] or "")
    answered = model.invoke([question, asked, result])
    assert answered.text.startswith(MARK) and "sunny and 21 C in Oslo" in answered.text


@pytest.mark.parametrize("responses_api", APIS)
def test_a_bound_tool_reaches_the_upstream(
    served: tuple[ServedGateway, FakeAnthropic], lc: SimpleNamespace, responses_api: bool
) -> None:
    gateway, upstream = served
    upstream.enqueue(Answer.tool_use("get_weather", {"city": "Bergen"}, tool_id="toolu_l1"))
    model = chat(gateway, "anthropic", responses_api).bind_tools(
        [lc.get_weather], tool_choice="get_weather"
    )
    asked = model.invoke("Weather in Bergen?")
    assert isinstance(asked, lc.AIMessage)
    assert [(c["name"], c["args"], c["id"]) for c in asked.tool_calls] == [
        ("get_weather", {"city": "Bergen"}, "toolu_l1")
    ]
    sent = upstream.requests[-1].body
    assert sent["tool_choice"]["type"] == "tool" and sent["tool_choice"]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"]["properties"]["city"]["type"] == "string"
