"""The fake servers' shared base: records what arrived, plays scripted faults, stops cleanly."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.server import Disconnect, Exchange, FakeServer, RecordedRequest, Reply


class Echo(FakeServer):
    """Answers ``{"ok": true}``, or the next scripted fault."""

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        scripted = self.next_scripted()
        if scripted is not None:
            exchange.play(scripted)
        else:
            exchange.send_json(200, {"ok": True})


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as server:
        yield server


def test_every_request_is_recorded_with_method_path_headers_and_body(echo: Echo) -> None:
    httpx.post(f"{echo.url}/v1/things?x=1", json={"a": 1}, headers={"x-api-key": "k"})
    httpx.get(f"{echo.url}/health")

    first, second = echo.wait_for_requests(2)
    assert (first.method, first.path, first.route) == ("POST", "/v1/things?x=1", "/v1/things")
    assert first.headers["content-type"] == "application/json"
    assert first.api_key == "k"
    assert first.body == {"a": 1}
    assert first.raw == b'{"a":1}'
    assert (second.method, second.body, second.raw) == ("GET", None, b"")
    assert first.received_at <= second.received_at


def test_a_chunked_body_and_repeated_headers_are_recorded_whole(echo: Echo) -> None:
    headers = [("anthropic-beta", "one"), ("anthropic-beta", "two")]
    httpx.post(echo.url, content=iter([b'{"a": ', b"[1, 2]}"]), headers=headers)

    [recorded] = echo.requests
    assert recorded.body == {"a": [1, 2]}
    assert recorded.headers["anthropic-beta"] == "one, two"


def test_a_scripted_reply_then_the_normal_answer(echo: Echo) -> None:
    echo.enqueue(Reply(429, {"error": "slow down"}, {"retry-after": "7"}))
    with httpx.Client(base_url=echo.url) as client:
        limited = client.post("/")
        normal = client.post("/")  # the same keep-alive connection
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json() == {"error": "slow down"}
    assert normal.json() == {"ok": True}
    assert echo.pending == 0


def test_a_disconnect_is_a_connection_error(echo: Echo) -> None:
    echo.enqueue(Disconnect())
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(echo.url)


def test_stop_ends_a_scripted_delay_at_once() -> None:
    server = Echo().start()
    server.enqueue(Reply(200, delay_s=30))
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        server.wait_for_requests(1)
        started = time.monotonic()
        server.stop()
        conn.settimeout(5)
        assert conn.recv(1024) == b""  # closed without an answer
    assert time.monotonic() - started < 5


def test_waiting_for_requests_that_never_come_fails_in_time(echo: Echo) -> None:
    with pytest.raises(AssertionError, match="expected 1 requests within 0.05 s, got 0"):
        echo.wait_for_requests(1, timeout_s=0.05)
