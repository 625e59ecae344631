"""A hostile upstream behind both OpenAI-compatible endpoints: answers that are no Message,
malformed blocks, strings UTF-8 cannot hold, event streams of nonsense, and a client that
leaves mid-stream. Each ends in a clean 502 in OpenAI's shape, an in-band error, or a whole
answer; never a 500, a crash mid-stream, or a gateway that stops answering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_server import Answer, FakeAnthropic, Fault, Reply
from tests.gateway.openai_support import gateway_on
from tests.gateway.support import ANTHROPIC_MODEL, ServedGateway

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
BODIES: dict[str, dict[str, Any]] = {
    CHAT: {"model": "anthropic", "messages": [{"role": "user", "content": "hi"}]},
    RESPONSES: {"model": "anthropic", "input": "hi"},
}
SILENCE_S = 0.3
CONFIG = {
    "routes": {
        "impatient": [{"provider": "anthropic", "model": ANTHROPIC_MODEL, "timeout_s": SILENCE_S}]
    }
}
"""A route that gives up on a stream silent for ``SILENCE_S``."""
ENDPOINTS = pytest.mark.parametrize("path", [CHAT, RESPONSES], ids=["chat", "responses"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServedGateway, Any]]:
    with gateway_on(tmp_path_factory.mktemp("hostile-upstream"), CONFIG) as both:
        yield both


@pytest.fixture(scope="module")
def http(served: tuple[ServedGateway, FakeAnthropic]) -> httpx.Client:
    return served[0].http()


@pytest.fixture(scope="module")
def upstream(served: tuple[ServedGateway, FakeAnthropic]) -> FakeAnthropic:
    return served[1]


def message(content: Any, **fields: Any) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "content": content, "usage": {}, **fields}


def sse(*events: Any) -> Reply:
    """An event stream of ``events`` (each a JSON value, or raw bytes for one data line)."""
    lines = [
        e if isinstance(e, bytes) else f"event: {_name(e)}\ndata: {json.dumps(e)}\n\n".encode()
        for e in events
    ]
    return Reply(200, b"".join(lines), {"content-type": "text/event-stream"})


def _name(event: Any) -> str:
    return str(event.get("type")) if isinstance(event, dict) else "x"


def streamed(http: httpx.Client, path: str, model: str = "anthropic") -> str:
    body = {**BODIES[path], "model": model, "stream": True}
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        return response.read().decode()


MALFORMED = {
    "content not a list": message("hi"),
    "a block not an object": message(["text"]),
    "text not a string": message([{"type": "text", "text": 5}]),
    "a tool call without an id": message([{"type": "tool_use", "name": "f", "input": {}}]),
    "tool input not an object": message(
        [{"type": "tool_use", "id": "t", "name": "f", "input": "{bad"}]
    ),
}


@ENDPOINTS
@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_an_answer_that_is_no_message_is_a_502(
    http: httpx.Client, upstream: FakeAnthropic, path: str, answer: Any
) -> None:
    upstream.enqueue(Reply(200, answer))
    response = http.post(path, json=BODIES[path])
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "server_error" and "provider's answer" in error["message"]
    assert response.headers["request-id"]


@ENDPOINTS
def test_a_lone_surrogate_from_the_upstream_comes_back_as_json(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    raw = b'{"id":"m","type":"message","content":[{"type":"text","text":"a\\ud800b"}],"usage":{}}'
    upstream.enqueue(Reply(200, raw))
    response = http.post(path, json=BODIES[path])
    assert response.status_code == 200, response.text
    assert "a\\ud800b" in response.text  # escaped, so the body is valid UTF-8 and JSON


@ENDPOINTS
def test_a_lone_surrogate_in_a_stream_is_escaped(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    upstream.enqueue(Answer.text("a\ud800b", text_pieces=1))
    text = streamed(http, path)
    assert "a\\ud800b" in text
    assert ("response.completed" if path == RESPONSES else "data: [DONE]") in text


@ENDPOINTS
def test_a_stream_of_events_that_are_no_objects_ends_in_an_error(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    upstream.enqueue(sse({"type": "message_start", "message": {}}, [1, 2], b"data: {nope\n\n"))
    text = streamed(http, path)
    assert ("response.failed" if path == RESPONSES else '"error"') in text


@ENDPOINTS
def test_events_with_fields_of_the_wrong_type_are_read_as_absent(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    upstream.enqueue(
        sse(
            {"type": "message_start", "message": [1]},
            {"type": "content_block_start", "index": [0], "content_block": "text"},
            {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use"}},
            {"type": "content_block_delta", "index": {}, "delta": 5},
            {"type": "content_block_stop", "index": 1},
            {"type": "message_delta", "delta": "x", "usage": ["n"]},
            {"type": "message_stop"},
        )
    )
    text = streamed(http, path)
    assert text.endswith("data: [DONE]\n\n" if path == CHAT else "}\n\n")
    if path == RESPONSES:
        assert "response.completed" in text


@ENDPOINTS
def test_a_client_leaving_mid_stream_leaves_the_gateway_answering(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    upstream.enqueue(Answer.text("word " * 5_000, text_pieces=500))
    with http.stream("POST", path, json={**BODIES[path], "stream": True}) as response:
        assert next(response.iter_bytes())  # one piece, then the client goes
    assert http.post(path, json=BODIES[path]).status_code == 200


@ENDPOINTS
def test_a_stream_that_stalls_ends_in_an_error_not_a_hang(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    upstream.enqueue(Answer.text("hello there world", stall_after_events=4, stall_s=5))
    text = streamed(http, path, "impatient")  # the client's 10 s timeout would fail a hang
    assert "hello" in text
    assert ("response.failed" if path == RESPONSES else '{"error"') in text
    assert "[DONE]" not in text


@ENDPOINTS
def test_an_upstream_error_quoting_the_key_does_not_leak_it(
    http: httpx.Client, upstream: FakeAnthropic, path: str
) -> None:
    upstream.enqueue(Fault(400, message=f"bad request for key {upstream.api_key}"))
    response = http.post(path, json=BODIES[path])
    assert response.status_code == 400
    assert upstream.api_key not in response.text and "[redacted]" in response.text


def test_concurrent_calls_on_both_endpoints_each_get_their_own_answer(
    http: httpx.Client,
) -> None:
    """Streams and whole answers at once, each asking its own question: the fake upstream
    echoes it, so an answer crossed with another's would show."""

    def ask(n: int) -> tuple[str, str]:
        path, stream = (CHAT, RESPONSES)[n % 2], n % 4 >= 2
        question = f"question {n} \u00e9\U0001f600"
        body = dict(BODIES[path])
        if path == CHAT:
            body["messages"] = [{"role": "user", "content": question}]
        else:
            body["input"] = question
        if stream:
            with http.stream("POST", path, json={**body, "stream": True}) as response:
                text = response.read().decode()
            pieces = [json.loads(line[6:]) for line in text.splitlines() if line[6:7] == "{"]
            words = [_delta_text(piece) for piece in pieces]
            return question, "".join(words)
        answer = http.post(path, json=body).json()
        if path == CHAT:
            return question, answer["choices"][0]["message"]["content"]
        return question, answer["output"][0]["content"][0]["text"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(24)))
    assert all(answer == f"fake-anthropic answer to: {q}" for q, answer in answers), answers


def _delta_text(piece: dict[str, Any]) -> str:
    if piece.get("type") == "response.output_text.delta":
        return str(piece["delta"])
    choices = piece.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


def test_a_lone_surrogate_from_the_client_is_answered(http: httpx.Client) -> None:
    raw = b'{"model": "anthropic", "messages": [{"role": "user", "content": "x \\ud800"}]}'
    response = http.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].endswith("x \ud800")
