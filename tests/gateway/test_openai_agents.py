"""The OpenAI Agents SDK against the gateway: an agent with a function tool run to its final
output, with the SDK's default model (``OpenAIResponsesModel``, ``/v1/responses``) and with
``OpenAIChatCompletionsModel`` (``/v1/chat/completions``); offline through the local model,
and through the fake Anthropic upstream, asserting what reached it. Tracing export is off:
no test reaches the network."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from functions.gateway.providers.local import MARK
from tests.fakes.anthropic_server import Answer, FakeAnthropic
from tests.gateway.openai_support import gateway_on
from tests.gateway.support import ServedGateway

# The Agents SDK and openai are imported where used, by the worker that runs these tests: 3.6 s
# of CPU that every worker would pay to collect this module (tests/lazy_imports.py).
if TYPE_CHECKING:
    from agents import FunctionTool, Model
    from openai import AsyncOpenAI

T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T], client: AsyncOpenAI) -> T:
    """``work`` run to its end in a thread of its own. On CPython 3.11.7, after an agent run
    through the fake upstream, the next ``compile`` in the same thread (pytest rewriting a
    module it imports at the end) failed with "AST constructor recursion depth mismatch", a
    CPython bug in its recursion accounting: a thread of its own keeps it off pytest's."""

    async def then_close() -> T:
        try:
            return await work
        finally:
            await client.close()  # its pooled connections, in the loop that opened them

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, then_close()).result()


@functools.cache
def weather_tool() -> FunctionTool:
    from agents import function_tool

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city today."""
        return f"sunny and 21 C in {city}"

    return get_weather


@pytest.fixture(scope="module", autouse=True)
def no_tracing() -> Iterator[None]:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServedGateway, FakeAnthropic]]:
    with gateway_on(tmp_path_factory.mktemp("agents")) as both:
        yield both


def model_for(gateway: ServedGateway, kind: str, route: str) -> tuple[Model, AsyncOpenAI]:
    from agents import OpenAIChatCompletionsModel, OpenAIResponsesModel
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    if kind == "responses":
        return OpenAIResponsesModel(model=route, openai_client=client), client
    return OpenAIChatCompletionsModel(model=route, openai_client=client), client


def run_agent(gateway: ServedGateway, kind: str, route: str, task: str) -> Any:
    from agents import Agent, ModelSettings, Runner

    model, client = model_for(gateway, kind, route)
    agent = Agent(
        name="weather",
        instructions="Answer questions about the weather with the get_weather tool.",
        tools=[weather_tool()],
        model=model,
        # The Agents SDK sends no `store` unless asked; the gateway refuses only store: true.
        model_settings=ModelSettings(store=False),
    )
    return run_async(Runner.run(agent, task), client)


KINDS = [
    pytest.param("responses", id="responses-model"),
    pytest.param("chat", id="chat-completions-model"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_an_agent_calls_its_tool_offline_to_a_final_output(
    served: tuple[ServedGateway, FakeAnthropic], kind: str
) -> None:
    result = run_agent(served[0], kind, "local", "use get_weather for Oslo")
    assert isinstance(result.final_output, str)
    assert result.final_output.startswith(MARK)
    assert "sunny and 21 C in Oslo" in result.final_output
    called = [item for item in result.new_items if item.type == "tool_call_output_item"]
    assert [item.output for item in called] == ["sunny and 21 C in Oslo"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_agent_through_the_upstream_sends_its_tool_result_back(
    served: tuple[ServedGateway, FakeAnthropic], kind: str
) -> None:
    gateway, upstream = served
    before = len(upstream.requests)
    upstream.enqueue(
        Answer.tool_use("get_weather", {"city": "Bergen"}, tool_id="toolu_a1"),
        Answer.text("It is sunny in Bergen."),
    )
    result = run_agent(gateway, kind, "anthropic", "Weather in Bergen?")
    assert result.final_output == "It is sunny in Bergen."
    first, second = (r.body for r in upstream.requests[before:])
    assert first["system"].startswith("Answer questions about the weather")
    assert [tool["name"] for tool in first["tools"]] == ["get_weather"]
    assert first["tools"][0]["input_schema"]["required"] == ["city"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    [call] = [b for b in second["messages"][1]["content"] if b["type"] == "tool_use"]
    assert (call["id"], call["input"]) == ("toolu_a1", {"city": "Bergen"})
    [answer] = second["messages"][2]["content"]
    assert answer == {
        "type": "tool_result",
        "tool_use_id": "toolu_a1",
        "content": "sunny and 21 C in Bergen",
    }


def test_a_streamed_agent_run_reaches_its_final_output(
    served: tuple[ServedGateway, FakeAnthropic],
) -> None:
    from agents import Agent, Runner

    model, client = model_for(served[0], "responses", "local")
    agent = Agent(
        name="weather", instructions="Use get_weather.", tools=[weather_tool()], model=model
    )

    async def run() -> tuple[Any, list[str]]:
        streamed = Runner.run_streamed(agent, "use get_weather for Tromso")
        kinds: list[str] = [event.type async for event in streamed.stream_events()]
        return streamed.final_output, kinds

    final, kinds = run_async(run(), client)
    assert "raw_response_event" in kinds
    assert isinstance(final, str) and "sunny and 21 C in Tromso" in final
