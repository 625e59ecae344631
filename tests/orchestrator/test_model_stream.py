"""A model turn streamed from the gateway (``GatewayModel.stream``), against the fake Anthropic
API (the gateway speaks its wire format): text passed on piece by piece and in order, the
message put together (tool calls included), breaks reported and retried only before any text
was passed on; and a streamed run relaying the text as ``text_delta`` events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.model import GatewayModel, ModelCallError
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from shared.aio import AsyncHttp
from shared.http import Call
from shared.resilience import RetrySettings
from tests.fakes.anthropic_server import DEFAULT_API_KEY, Answer, FakeAnthropic, Fault
from tests.orchestrator.fakes import CALCULATOR, FakeAgents, calculate, directory

pytestmark = pytest.mark.anyio

REQUEST: dict[str, Any] = {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def model(http: AsyncHttp, fake: FakeAnthropic) -> GatewayModel:
    retry = RetrySettings(max_attempts=2, base_delay_s=0.0)
    return GatewayModel(http, fake.base_url, "claude-x", retry, api_key=DEFAULT_API_KEY)


class Pieces:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.texts.append(text)


async def test_text_is_passed_on_in_pieces_in_order(
    http: AsyncHttp, anthropic: FakeAnthropic
) -> None:
    answer = "The answer is forty-two, as computed before."
    anthropic.enqueue(Answer.text(answer, text_pieces=4, output_tokens=9))
    pieces = Pieces()
    reply = await model(http, anthropic).stream(REQUEST, timeout_s=5, on_text=pieces)
    assert len(pieces.texts) == 4 and "".join(pieces.texts) == answer
    assert reply.content == [{"type": "text", "text": answer}]
    assert reply.stop_reason == "end_turn" and reply.output_tokens == 9
    assert anthropic.requests[-1].body["stream"] is True


async def test_a_tool_call_is_put_together_from_its_pieces(
    http: AsyncHttp, anthropic: FakeAnthropic
) -> None:
    call = {"expression": "6 * 7", "note": "x" * 50}
    anthropic.enqueue(Answer.tool_use("calculator", call, tool_id="toolu_1", preamble="Let me."))
    pieces = Pieces()
    reply = await model(http, anthropic).stream(REQUEST, timeout_s=5, on_text=pieces)
    assert "".join(pieces.texts) == "Let me." and reply.stop_reason == "tool_use"
    [text, use] = reply.content
    assert use == {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": call}


async def test_a_break_before_any_text_is_tried_again(
    http: AsyncHttp, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(Answer.text("never", error_after_events=1), Answer.text("second"))
    pieces = Pieces()
    reply = await model(http, anthropic).stream(REQUEST, timeout_s=5, on_text=pieces)
    assert "".join(pieces.texts) == "second"  # nothing of the broken attempt
    assert reply.attempts == 2


async def test_a_break_after_text_was_passed_on_fails_the_turn(
    http: AsyncHttp, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(Answer.text("half of an answer", text_pieces=3, error_after_events=4))
    pieces = Pieces()
    with pytest.raises(ModelCallError, match="stream broke") as failed:
        await model(http, anthropic).stream(REQUEST, timeout_s=5, on_text=pieces)
    assert failed.value.attempts == 1 and pieces.texts  # not tried again: words were seen


async def test_a_stream_cut_short_and_an_error_status_fail_the_turn(
    http: AsyncHttp, anthropic: FakeAnthropic
) -> None:
    anthropic.enqueue(
        Answer.text("cut", cut_after_events=3), Answer.text("cut", cut_after_events=3)
    )
    with pytest.raises(ModelCallError):
        await model(http, anthropic).stream(REQUEST, timeout_s=5, on_text=Pieces())
    anthropic.enqueue(Fault(400, "max_tokens: too large", "invalid_request_error"))
    with pytest.raises(ModelCallError, match="answered 400: max_tokens: too large"):
        await model(http, anthropic).stream(REQUEST, timeout_s=5, on_text=Pieces())


async def test_a_streamed_run_relays_the_text_as_text_delta_events(
    http: AsyncHttp, anthropic: FakeAnthropic, fake_agents: FakeAgents
) -> None:
    fake_agents.add("calculator", calculate, CALCULATOR.schema())
    anthropic.enqueue(
        Answer.tool_use("calculator", {"expression": "6 * 7"}, preamble="I will compute it."),
        Answer.text("6 * 7 is 42, the answer.", text_pieces=3),
    )
    config = OrchestratorConfig.model_validate({"gateway": {"url": anthropic.base_url}})
    orchestrator = OrchestratorService(
        config, model(http, anthropic), directory(fake_agents, http), None, RunRegistry(60)
    )
    body = json.dumps({"task": "What is 6 * 7?", "stream": True}).encode()
    reply = await orchestrator.submit(Call("POST", "/", {}, body, "req-1"))
    events = [_event(raw) async for raw in reply.body]

    names = [name for name, _ in events]
    deltas = [data for name, data in events if name == "text_delta"]
    assert [d["index"] for d in deltas][0] == 0 and deltas[-1]["index"] == 2
    assert "".join(d["text"] for d in deltas if d["index"] == 0) == "I will compute it."
    assert "".join(d["text"] for d in deltas if d["index"] == 2) == "6 * 7 is 42, the answer."
    first, last = names.index("text_delta"), len(names) - 1 - names[::-1].index("text_delta")
    assert names[first - 1] == "step_started" and names[last + 1] == "step_finished"
    assert events[-1][0] == "result" and events[-1][1]["answer"] == "6 * 7 is 42, the answer."


def _event(raw: bytes) -> tuple[str, Any]:
    name, data = raw.decode().strip().split("\n", 1)
    return name.removeprefix("event: "), json.loads(data.removeprefix("data: "))
