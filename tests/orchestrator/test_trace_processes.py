"""One task, one trace, across real processes: the orchestrator, the gateway and the
calculator agent each run as functions-framework serves them (their own process, their own
OpenTelemetry SDK, batch processor, OTLP/HTTP exporter), the sink is this test's process. The
receiver decodes every export with opentelemetry-proto: the spans of the three exporting
processes make one tree, and the sink got the context of the orchestrator's ``send`` span.

The in-process version (every span's parent and attribute, in one process):
``test_trace_export.py``. One set of processes for the module."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.process import FunctionProcess, start_function
from emulator.traces import ReceivedSpan
from tests.fakes.otlp import FakeOtlp
from tests.fakes.server import Exchange, FakeServer, RecordedRequest
from tests.orchestrator.serving import SERVER
from tests.served import refused_url
from tests.waiting import wait_until

pytestmark = pytest.mark.processes


class Sink(FakeServer):
    """A K_SINK that takes every CloudEvent."""

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        exchange.send_json(202, {})


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[str, FakeOtlp, Sink]]:
    with FakeOtlp() as receiver, Sink() as sink:
        traced = {
            **SERVER,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "50",  # exported as they end: the test waits less
        }
        started: list[FunctionProcess] = []
        try:
            for target in ("gateway", "calculator"):  # the name a platform gives each
                started.append(start_function(target, env={**traced, "K_SERVICE": target}))
            urls = {
                "GATEWAY_URL": started[0].url,
                "CALCULATOR_URL": started[1].url,
                "SEARCH_URL": refused_url(),
                "DATA_PROCESSOR_URL": refused_url(),
                "TAVILY_URL": refused_url(),
                "K_SINK": sink.url,
            }
            named = {**traced, **urls, "K_SERVICE": "orchestrator"}
            started.append(start_function("orchestrator", env=named))
            yield started[2].url, receiver, sink
        finally:
            for process in started:
                process.stop()


def ask(url: str, task: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(task).encode(), method="POST")
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer: dict[str, Any] = json.load(reply)
    return answer


def child_of(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]
    children = [s.name for s in spans if s.parent_span_id == parent.span_id]
    assert len(found) == 1, f"{parent.name} has no one child {name!r}: {children}"
    return found[0]


def test_a_task_is_one_trace_across_four_processes(
    stack: tuple[str, FakeOtlp, Sink],
) -> None:
    url, receiver, sink = stack
    result = ask(url, {"task": "What is 17*23?", "agents": ["calculator"]})
    assert result["status"] == "completed", result
    trace_id = result["trace_id"]
    [delivered] = sink.wait_for_requests(1, timeout_s=30)

    def exported() -> list[ReceivedSpan] | None:
        spans = [s for s in receiver.spans() if s.trace_id == trace_id]
        names = {s.name for s in spans}
        wanted = {"send sink", "chat local-rules", "execute_tool calculator"}
        agent_served = any(s.name == "POST /" and s.parent_span_id for s in spans)
        return spans if wanted <= names and agent_served else None

    spans = wait_until(exported, 30, "the three processes' spans at the receiver") or []

    [root] = [s for s in spans if not s.parent_span_id]
    assert (root.name, root.kind) == ("POST /", "SERVER")
    run = child_of(spans, root, "invoke_agent orchestrator")
    # orchestrator -> gateway, process to process: the model call's span is the parent
    chat = [s for s in spans if s.parent_span_id == run.span_id and s.name == "chat default"]
    served = child_of(spans, chat[0], "POST /v1/messages")
    attempt = child_of(spans, served, "chat local-rules")
    assert attempt.attributes["gen_ai.provider.name"] == "agentorch.local"
    # orchestrator -> agent
    tool = child_of(spans, run, "execute_tool calculator")
    agent = child_of(spans, tool, "POST /")
    # three processes, each its own service
    assert (root.service, served.service, agent.service) == (
        "orchestrator",
        "gateway",
        "calculator",
    )
    assert run.service == tool.service == root.service and attempt.service == served.service
    # orchestrator -> sink (this process): the delivery carries the send span's context
    send = child_of(spans, root, "send sink")
    assert send.kind == "PRODUCER"
    assert delivered.headers["traceparent"].split("-")[1:3] == [trace_id, send.span_id]
