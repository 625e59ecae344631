"""The shared edge under hostile clients, served as production serves it (functions-framework,
gunicorn, a uvicorn worker on ``shared.server``): slow clients, huge or endless bodies, huge
request lines and headers, truncated bodies. Each test is bounded in time by its clients'
timeouts and asserts the refusal, and where it was a resource problem, the bound (the worker's
memory).

The edge is one piece of code (``shared.server`` and ``shared.asgi``), so it is tested once, on
the probe function ``tests/shared/functions/basic``; every real function then gets one smoke
test that it stands on that edge."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator.network import free_port
from emulator.process import (
    FunctionProcess,
    function_environment,
    spawn,
    start_function,
    wait_healthy,
)
from shared.manifest import load_manifest
from tests.shared.scenarios import FUNCTIONS_DIR

pytestmark = pytest.mark.processes

REPO = Path(__file__).parents[2]
FUNCTIONS = [f.target for f in load_manifest().functions if (REPO / f.main).exists()]
MIB = 1024 * 1024
POST_PATH = {"gateway": b"/v1/messages"}
"""Where each function takes a body (a POST elsewhere is a 404 before any byte is read)."""
EDGE_ENV = {
    "WORKERS": "1",
    "REQUEST_BODY_TIMEOUT_S": "1",
    "REQUEST_HEAD_TIMEOUT_S": "1",
    "GATEWAY_API_KEYS": "k-1",
}


def post_path(process: FunctionProcess) -> bytes:
    return POST_PATH.get(process.target, b"/")


def start_probe(log_path: Path) -> FunctionProcess:
    """The probe function (a body limit of 1 KiB) as ``start_function`` starts a real one."""
    port = free_port()
    log = log_path.open("wb")
    source = FUNCTIONS_DIR / "basic" / "main.py"
    environ = function_environment(port, EDGE_ENV)
    process = FunctionProcess("basic", port, spawn(source, "basic", port, environ, output=log), log)
    try:
        wait_healthy(process.url, process.process, 30.0)
    except Exception:
        process.stop()
        raise
    return process


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionProcess, Path]]:
    log = tmp_path_factory.mktemp("logs") / "probe.log"
    process = start_probe(log)
    yield process, log
    process.stop()


def worker_rss_mb(process: FunctionProcess) -> float:
    """Resident memory of the server's worker processes (children of the gunicorn arbiter)."""
    pid = process.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for child in children:
        status = Path(f"/proc/{child}/status").read_text()
        total += int(status.split("VmRSS:")[1].split()[0])
    return total / 1024


def connect(process: FunctionProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", process.port), timeout=10)
    return sock


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        None,
    )
    while length is not None and len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


def assert_json_error(body: bytes, error_type: str) -> str:
    parsed = json.loads(body)
    assert parsed["type"] == "error" and parsed["error"]["type"] == error_type, parsed
    message: str = parsed["error"]["message"]
    return message


def test_slow_clients_do_not_stall_health(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    idle = []
    for n in range(500):
        sock = connect(process)
        if n % 2:  # half trickle a request line, half complete headers and trickle a body
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        else:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")  # noqa: E501
        idle.append(sock)
    try:
        for _ in range(5):
            response = httpx.get(f"{process.url}/health", timeout=1.0)
            assert response.status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_body_that_stops_arriving_is_a_408(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    with connect(process) as sock:
        sock.sendall(
            b'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":' % post_path(process)
        )
        status, body = read_response(sock)  # REQUEST_BODY_TIMEOUT_S=1 in this fixture
    assert status == 408
    assert "did not arrive within 1 s" in assert_json_error(body, "request_timeout")


def test_a_declared_huge_body_is_refused_before_it_is_read(
    served: tuple[FunctionProcess, Path],
) -> None:
    process, _ = served
    before = worker_rss_mb(process)
    with connect(process) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1500000000\r\n\r\n" % post_path(process)
        )
        try:
            for _ in range(64):  # 64 MB, of the 1.5 GB announced
                sock.sendall(b"a" * MIB)
        except OSError:
            pass  # the server may close on us once it has answered
        status, body = read_response(sock)
    assert status == 413
    assert "1500000000 bytes" in assert_json_error(body, "request_too_large")
    assert worker_rss_mb(process) - before < 32


def test_a_chunked_body_stops_being_read_at_the_limit(
    served: tuple[FunctionProcess, Path],
) -> None:
    process, _ = served
    before = worker_rss_mb(process)
    with connect(process) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            % post_path(process)
        )
        chunk = b"%x\r\n%s\r\n" % (MIB, b"a" * MIB)
        try:
            for _ in range(80):  # 80 MB, far past every function's limit
                sock.sendall(chunk)
        except OSError:
            pass
        status, body = read_response(sock)
    assert status == 413
    assert "exceeds the limit" in assert_json_error(body, "request_too_large")
    assert worker_rss_mb(process) - before < 64


def test_a_truncated_chunked_body_is_a_400_logged_in_one_line(
    served: tuple[FunctionProcess, Path],
) -> None:
    process, log = served
    lines_before = len(log.read_bytes().splitlines())
    with connect(process) as sock:
        sock.sendall(
            b'POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{"a"'
            % post_path(process)
        )
        sock.shutdown(socket.SHUT_WR)  # the client gives up mid-chunk
        status, body = read_response(sock)
    if status:  # the answer may be lost with the half-closed connection; the log is not
        assert status == 400
        assert "ended before it was complete" in assert_json_error(body, "invalid_request_error")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        new = log.read_bytes().splitlines()[lines_before:]
        if len(new) <= 1 and not any(b"Traceback" in line for line in new):
            break
        time.sleep(0.05)
    new = log.read_bytes().splitlines()[lines_before:]
    assert len(new) <= 1 and not any(b"Traceback" in line for line in new), new


@pytest.mark.parametrize("size", [70_000, 31 * MIB])
def test_a_huge_request_line_is_refused_without_echo(
    served: tuple[FunctionProcess, Path], size: int
) -> None:
    process, _ = served
    before = worker_rss_mb(process)
    with connect(process) as sock:
        # Refused and closed before we finished sending is the point: OSError is fine.
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status, body = read_response(sock)
    # 0: the server answered and closed while we were still sending, and the answer was lost.
    assert status in (0, 431)
    if status:
        assert "exceed 65536 bytes" in assert_json_error(body, "request_too_large")
    assert len(body) < 400
    assert worker_rss_mb(process) - before < 32


def test_huge_headers_are_refused(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    before = worker_rss_mb(process)
    with connect(process) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(100):
                sock.sendall(b"a" * MIB)
        except OSError:
            pass
        status, body = read_response(sock)
    assert status in (0, 431)
    if status:
        assert_json_error(body, "request_too_large")
    assert worker_rss_mb(process) - before < 32
    assert httpx.get(f"{process.url}/health", timeout=2.0).status_code == 200


def test_headers_under_the_limit_are_served(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    big = {f"x-pad-{n}": "v" * 7000 for n in range(8)}  # 56 KB of headers, under 64 KiB

    assert httpx.get(f"{process.url}/health", headers=big, timeout=5.0).status_code == 200


@pytest.mark.parametrize(
    "head", [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a", b"GET /hea"], ids=["headers", "line"]
)
def test_a_head_that_stops_arriving_is_a_408_and_closed(
    served: tuple[FunctionProcess, Path], head: bytes
) -> None:
    process, _ = served
    with connect(process) as sock:
        sock.sendall(head)
        status, body = read_response(sock)  # REQUEST_HEAD_TIMEOUT_S=1 in this fixture
        assert sock.recv(1) == b""  # and the connection is closed
    assert status == 408
    assert "did not arrive within 1 s" in assert_json_error(body, "request_timeout")


def test_a_connection_that_sends_nothing_is_closed(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    with connect(process) as sock:
        assert sock.recv(1) == b""  # closed after REQUEST_HEAD_TIMEOUT_S, without an answer


def test_a_malformed_request_is_a_json_400(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    with connect(process) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost x\r\n\r\n")  # a header without a colon
        status, body = read_response(sock)
    assert status == 400
    assert "not a valid HTTP/1.1 request" in assert_json_error(body, "invalid_request_error")


def test_a_long_unknown_path_is_quoted_short(served: tuple[FunctionProcess, Path]) -> None:
    process, _ = served
    response = httpx.get(f"{process.url}/{'x' * 8000}", timeout=5.0)

    assert response.status_code == 404
    message = assert_json_error(response.content, "not_found_error")
    assert len(message) < 400 and "8001 characters" in message


def test_metrics_are_behind_the_gateways_keys() -> None:
    process = start_function("gateway", env={"WORKERS": "1", "GATEWAY_API_KEYS": "k-1"})
    try:
        refused = httpx.get(f"{process.url}/metrics", timeout=5.0)
        allowed = httpx.get(f"{process.url}/metrics", headers={"x-api-key": "k-1"}, timeout=5.0)
        health = httpx.get(f"{process.url}/health", timeout=5.0)
    finally:
        process.stop()
    assert refused.status_code == 401
    assert_json_error(refused.content, "authentication_error")
    assert allowed.status_code == 200 and "agentorch_http_requests_total" in allowed.text
    assert health.status_code == 200  # health stays open for probes


@pytest.mark.parametrize("target", FUNCTIONS)
def test_each_function_is_served_on_the_shared_edge(target: str) -> None:
    """A malformed head and a declared huge body are refused by the shared edge, in JSON."""
    process = start_function(target, env=EDGE_ENV)
    try:
        with connect(process) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost x\r\n\r\n")
            malformed = read_response(sock)
        with connect(process) as sock:
            sock.sendall(
                b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1500000000\r\n\r\n" % post_path(process)
            )
            huge = read_response(sock)
    finally:
        process.stop()
    assert malformed[0] == 400
    assert "not a valid HTTP/1.1 request" in assert_json_error(
        malformed[1], "invalid_request_error"
    )
    assert huge[0] == 413
    assert "1500000000 bytes" in assert_json_error(huge[1], "request_too_large")
