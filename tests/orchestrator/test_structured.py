"""``output_schema``: the answer is JSON valid against it, checked with ``jsonschema``; an
invalid answer gets one repair turn, then the run fails with the reason; the offline model
answers with valid JSON carrying what it computed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from shared.aio import AsyncHttp
from shared.errors import BadRequest
from shared.http import Call
from tests.orchestrator.fakes import (
    CALCULATOR,
    FakeAgents,
    OfflineModel,
    ScriptedModel,
    calculate,
    directory,
    text,
)

pytestmark = pytest.mark.anyio

RESULT = {
    "type": "object",
    "properties": {"result": {"type": "integer"}, "explanation": {"type": "string"}},
    "required": ["result", "explanation"],
    "additionalProperties": False,
}


def orchestrator(fakes: FakeAgents, http: AsyncHttp, model: Any) -> OrchestratorService:
    fakes.add("calculator", calculate, CALCULATOR.schema())
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    runs = RunRegistry(config.dedupe_ttl_s)
    return OrchestratorService(config, model, directory(fakes, http), None, runs)


def ask(task: str, schema: Any) -> Call:
    body = json.dumps({"task": task, "output_schema": schema}).encode()
    return Call("POST", "/", {"content-type": "application/json"}, body, "req-1")


async def test_a_valid_answer_is_its_output_and_the_schema_reached_the_model(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text('```json\n{"result": 42, "explanation": "6*7"}\n```'))
    reply = await orchestrator(fake_agents, http, model).submit(ask("6 * 7?", RESULT))
    assert reply.body["status"] == "completed"
    assert reply.body["output"] == {"result": 42, "explanation": "6*7"}
    sent = model.requests[0]["output_config"]
    assert sent == {"format": {"type": "json_schema", "schema": RESULT}}


async def test_an_invalid_answer_gets_one_repair_turn(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(
        text('{"result": "forty-two", "explanation": "x"}'),
        text('{"result": 42, "explanation": "x"}'),
    )
    reply = await orchestrator(fake_agents, http, model).submit(ask("6 * 7?", RESULT))
    assert reply.body["status"] == "completed" and reply.body["output"]["result"] == 42
    repair = model.requests[1]["messages"][-1]
    assert repair["role"] == "user" and "at result: 'forty-two' is not of type" in repair["content"]


async def test_a_second_invalid_answer_fails_the_run_with_the_reason(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text("forty-two"), text('{"result": 42}'))
    reply = await orchestrator(fake_agents, http, model).submit(ask("6 * 7?", RESULT))
    body = reply.body
    assert body["status"] == "failed" and body["stop_reason"] == "invalid_output"
    assert "after a repair turn" in body["error"] and "'explanation' is a required" in body["error"]
    assert "output" not in body and len(model.requests) == 2


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "nope"}, "not a valid JSON Schema at type"),
        ("an object please", "output_schema: Input should be a valid dictionary"),
        ({"properties": {"x": {"minimum": "low"}}}, "properties/x/minimum"),
    ],
)
async def test_a_bad_schema_is_refused_naming_what_is_wrong(
    fake_agents: FakeAgents, http: AsyncHttp, schema: Any, problem: str
) -> None:
    with pytest.raises(BadRequest, match="output_schema") as refused:
        await orchestrator(fake_agents, http, ScriptedModel()).submit(ask("x", schema))
    assert problem in refused.value.message


async def test_the_offline_model_answers_valid_json_with_what_it_computed(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    reply = await orchestrator(fake_agents, http, OfflineModel()).submit(
        ask("What is 6 * 7?", RESULT)
    )
    body = reply.body
    assert body["status"] == "completed", body
    Draft202012Validator(RESULT).validate(body["output"])
    assert body["output"]["result"] == 42 and "42" in body["output"]["explanation"]
    assert json.loads(body["answer"]) == body["output"]
