"""A hostile ``output_schema``: a ``$ref`` that refers to itself, a remote ``$ref`` (never
fetched), and a ``pattern`` that backtracks catastrophically in Python's ``re`` (matched by RE2
instead, in linear time). Each is a clear 400 when the task arrives, an answer checked at once,
or a run that ends ``failed`` with the reason; never a crash, a fetch or a stall."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.orchestrator.config import OrchestratorConfig
from functions.orchestrator.runs import RunRegistry
from functions.orchestrator.service import OrchestratorService
from functions.orchestrator.structured import check_schema, parsed
from shared.aio import AsyncHttp
from shared.errors import BadRequest
from shared.http import Call
from tests.orchestrator.fakes import FakeAgents, ScriptedModel, directory, text

pytestmark = pytest.mark.anyio

SELF_REF = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
NESTED_SELF_REF = {
    "type": "object",
    "properties": {"x": {"$ref": "#/$defs/a"}},
    "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
}
EVIL = "^(a+)+$"


def orchestrator(fakes: FakeAgents, http: AsyncHttp, model: Any) -> OrchestratorService:
    config = OrchestratorConfig.model_validate({"gateway": {"url": "http://gateway.invalid"}})
    runs = RunRegistry(config.dedupe_ttl_s)
    return OrchestratorService(config, model, directory(fakes, http), None, runs)


def ask(schema: Any) -> Call:
    body = json.dumps({"task": "answer", "output_schema": schema}).encode()
    return Call("POST", "/", {"content-type": "application/json"}, body, "req-1")


def test_a_remote_ref_is_refused_not_fetched() -> None:
    for ref in ("http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "other.json"):
        with pytest.raises(BadRequest, match=r"output_schema: .*\$ref"):
            check_schema({"type": "object", "properties": {"x": {"$ref": ref}}})


def test_a_ref_that_refers_to_itself_is_refused() -> None:
    with pytest.raises(BadRequest, match=r"output_schema: .*\$ref"):
        check_schema(SELF_REF)


def test_a_ref_loop_met_only_by_the_answer_is_a_problem_not_a_crash() -> None:
    check_schema(NESTED_SELF_REF)  # reached only through "x": not seen until an answer has it
    _, problem = parsed('{"x": 1}', NESTED_SELF_REF)
    assert problem is not None and "$ref" in problem


async def test_a_self_referring_schema_met_by_an_answer_fails_the_run(
    fake_agents: FakeAgents, http: AsyncHttp
) -> None:
    model = ScriptedModel().enqueue(text('{"x": 1}'), text('{"x": 2}'))
    reply = await orchestrator(fake_agents, http, model).submit(ask(NESTED_SELF_REF))
    assert reply.body["status"] == "failed" and "$ref" in reply.body["error"]


@pytest.mark.parametrize(
    ("pattern", "answer"),
    [
        # Each held Python's re for minutes (or far longer) on this answer; RE2 needs microseconds.
        (EVIL, "a" * 40 + "!"),
        ("^(\\d+)*$", "1" * 40 + "x"),
        ("^(a|a)*$", "a" * 40 + "b"),
        ("^\\d*\\d*\\d*\\d*x$", "1" * 3000 + "y"),  # polynomial: 3000**4 steps
    ],
)
def test_a_backtracking_pattern_is_matched_in_linear_time(pattern: str, answer: str) -> None:
    schema = check_schema({"type": "string", "pattern": pattern})
    _, problem = parsed(json.dumps(answer), schema)
    assert problem is not None and "does not match" in problem
    matching = answer[:-1] + ("x" if pattern.endswith("x$") else "")
    assert parsed(json.dumps(matching), schema)[1] is None


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "string", "pattern": "(a)\\1"}, "backreferences"),  # RE2 cannot
        ({"type": "string", "pattern": "^(?=a)a$"}, "lookarounds"),
        ({"type": "object", "patternProperties": {"^a$": {}}}, "patternProperties"),
        ({"type": "string", "pattern": "[\\d]{4294967296}"}, "pattern"),  # OverflowError in re
    ],
)
def test_what_cannot_be_matched_safely_is_refused(schema: dict[str, Any], why: str) -> None:
    with pytest.raises(BadRequest, match=f"output_schema: .*{why}"):
        check_schema(schema)


def test_a_property_named_like_a_keyword_is_just_a_property() -> None:
    named = {"pattern": {"type": "string"}, "patternProperties": {"type": "integer"}}
    schema = check_schema({"type": "object", "properties": named, "required": ["pattern"]})
    assert parsed('{"pattern": "x", "patternProperties": 1}', schema)[1] is None


@pytest.mark.parametrize(
    "pattern", ["^[a-z]+$", "^\\d{3}-\\d{4}$", "^(foo|bar)-[0-9]+$", "^([a-z]{2}-)?[A-Z]{2}$"]
)
def test_an_ordinary_pattern_is_kept(pattern: str) -> None:
    schema = check_schema({"type": "string", "pattern": pattern})
    assert parsed('"not it!"', schema)[1] is not None
