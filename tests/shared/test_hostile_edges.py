"""Hostile clients and broken upstreams at the edges of the server stack, on real sockets.

The gateway runs as production runs it (functions-framework, gunicorn, one uvicorn worker on
``shared.server``'s protocol) with a 2 KiB head limit and short timeouts, in front of
``Upstream``: a raw-socket Anthropic that can hold an answer until a test releases it and can
see its own writes stall, which the shared fake (timed delays, blocking writes) cannot.
``shared.wire`` meets broken upstreams through ``test_wire``'s scripted server; metrics are
read back through ``/metrics``. A test that pins a bug is a strict xfail naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httptools
import httpx
import pytest
import yaml

from emulator.process import FunctionProcess, start_function
from shared import metrics
from shared.errors import TransportError
from tests.shared import test_wire as tw
from tests.shared.test_server_limits import worker_rss_mb
from tests.shared.test_wire import Peer, answer, answering, fetch, numbered, post, run, serve, wire
from tests.waiting import wait_until

pytestmark = pytest.mark.processes  # one worker for the module's processes

HEAD_LIMIT = 2048
HEAD_TIMEOUT_S = 1.0
MESSAGE = json.dumps({"type": "message", "role": "assistant", "content": [], "usage": {}})
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(MESSAGE), MESSAGE.encode())
Play = Callable[[socket.socket], None]


# --- the upstream and the served gateway ----------------------------------------------------


class Upstream:
    """Answers each request with the next queued ``Play`` (else ``ANSWER``), a thread per
    connection; records each request's head and sets ``received``."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.plays: queue.Queue[Play] = queue.Queue()
        self.received = threading.Event()
        self.heads: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            reader = conn.makefile("rb")
            while line := reader.readline():
                lines, length = [line], 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    lines.append(line)
                    name, _, value = line.partition(b":")
                    length = int(value) if name.lower() == b"content-length" else length
                reader.read(length)
                self.heads.append(b"".join(lines))
                self.received.set()
                try:
                    play = self.plays.get_nowait()
                except queue.Empty:
                    conn.sendall(ANSWER)
                    continue
                play(conn)
                return


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    fake = Upstream()
    yield fake
    fake.listener.close()


@pytest.fixture(scope="module")
def gateway(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionProcess]:
    config = tmp_path_factory.mktemp("gateway") / "gateway.yaml"
    routes = {
        "up": [{"provider": "anthropic", "model": "m", "timeout_s": 20, "max_attempts": 1}],
        "local": [{"provider": "local", "model": "local-rules"}],
    }
    config.write_text(yaml.safe_dump({"routes": routes, "retry": {"max_attempts": 1}}))
    env = {
        "WORKERS": "1",
        "REQUEST_HEAD_MAX_BYTES": str(HEAD_LIMIT),
        "REQUEST_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "REQUEST_BODY_TIMEOUT_S": "2",
        "GATEWAY_API_KEYS": "k-1",
        "GATEWAY_CONFIG": str(config),
        "ANTHROPIC_API_KEY": "up-key",
        "ANTHROPIC_BASE_URL": upstream.url,
        # Counts reach the files only when scraped: what a SIGTERM loses does not depend on
        # how long a loaded machine takes between a request and the signal.
        "METRICS_FLUSH_INTERVAL_S": "3600",
    }
    process = start_function("gateway", env=env)
    yield process
    process.stop()


# --- talking to it ----------------------------------------------------------------------------


def connect(process: FunctionProcess, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:  # before connecting: a fixed window, no autotuning
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", process.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Responses:
    """The HTTP responses read from a socket, parsed by httptools: ``(status, headers, body)``."""

    def __init__(self) -> None:
        self.parsed: list[tuple[int, dict[str, str], bytes]] = []
        self._headers: dict[str, str] = {}
        self._body = b""
        self._parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.parsed.append((self._parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""

    @classmethod
    def read(cls, sock: socket.socket, count: int = 0) -> Responses:
        """Until ``count`` responses are in, or (0) until the server closes; a reset or
        bytes that are no response end the reading too."""
        responses = cls()
        with contextlib.suppress(ConnectionResetError, httptools.HttpParserError):
            while not count or len(responses.parsed) < count:
                data = sock.recv(65536)
                if not data:
                    break
                responses._parser.feed_data(data)
        return responses

    @property
    def statuses(self) -> list[int]:
        return [status for status, _, _ in self.parsed]


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: x"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines += [f"content-length: {len(body)}"] if body else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def message(route: str, stream: bool = False, pad: int = 0) -> bytes:
    body = {"model": route, "max_tokens": 8, "stream": stream, "metadata": {"pad": "p" * pad}}
    body["messages"] = [{"role": "user", "content": "hi"}]
    return request("POST", "/v1/messages", json.dumps(body).encode(), x_api_key="k-1")


def padded_head(size: int) -> bytes:
    """A ``GET /health`` head of exactly ``size`` bytes."""
    start = request("GET", "/health", connection="close")[:-2] + b"x-pad: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def has_read(port: int, peer_port: int) -> bool:
    """Whether the loopback socket ``port`` -> ``peer_port`` holds nothing unread (or is gone):
    the event that its process has taken what was sent, where that process says nothing."""
    local, remote = f"0100007F:{port:04X}", f"0100007F:{peer_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16) == 0
    return True


def server_has_read(process: FunctionProcess, sock: socket.socket) -> None:
    wait_until(lambda: has_read(process.port, sock.getsockname()[1]))


# --- the request head: pipelining, limits, time -------------------------------------------------


def test_pipelined_requests_in_one_write_are_answered_in_order(gateway: FunctionProcess) -> None:
    with connect(gateway) as sock:
        sock.sendall(
            request("GET", "/health", x_request_id="first")
            + request("GET", "/health", x_request_id="second", connection="close")
        )
        parsed = Responses.read(sock).parsed
    assert [(s, h["x-request-id"]) for s, h, _ in parsed] == [(200, "first"), (200, "second")]


def test_a_pipelined_head_after_a_body_is_charged_only_for_itself(gateway: FunctionProcess) -> None:
    with connect(gateway) as sock:
        # One read: a 3 KB request with a small head, and the next head begun.
        sock.sendall(message("local", pad=3000) + b"GET /health HTTP/1.1\r\nhost: x\r\n")
        first = Responses.read(sock, 1)
        with contextlib.suppress(OSError):
            sock.sendall(b"connection: close\r\n\r\n")
        assert first.statuses + Responses.read(sock).statuses == [200, 200]


def test_an_oversized_pipelined_head_does_not_cost_the_answer_before_it(
    gateway: FunctionProcess, upstream: Upstream
) -> None:
    release = threading.Event()

    def held(conn: socket.socket) -> None:
        release.wait(10)
        conn.sendall(ANSWER)

    upstream.received.clear()
    upstream.plays.put(held)
    with connect(gateway) as sock:
        sock.sendall(message("up"))
        assert upstream.received.wait(10)  # the first request is being answered
        sock.sendall(b"GET /health HTTP/1.1\r\nx-pad: " + b"a" * HEAD_LIMIT)  # too large
        server_has_read(gateway, sock)
        release.set()
        assert Responses.read(sock).statuses[:1] == [200]  # then a 431, or only the close


@pytest.mark.parametrize("writes", [1, 32, HEAD_LIMIT], ids=["whole", "in-32", "bytewise"])
@pytest.mark.parametrize(("size", "status"), [(HEAD_LIMIT, 200), (HEAD_LIMIT + 64, 431)])
def test_a_head_at_the_limit_is_served_and_one_past_it_refused(
    gateway: FunctionProcess, size: int, status: int, writes: int
) -> None:
    head_ = padded_head(size)
    step = -(-size // writes)
    with connect(gateway) as sock:
        with contextlib.suppress(OSError):  # refused and closed before the last byte
            for offset in range(0, size, step):
                sock.sendall(head_[offset : offset + step])
        assert Responses.read(sock).statuses == [status]


def test_many_tiny_headers_under_the_limit_are_served(gateway: FunctionProcess) -> None:
    with connect(gateway) as sock:
        sock.sendall(request("GET", "/health", connection="close")[:-2] + b"a:\r\n" * 400 + b"\r\n")
        assert Responses.read(sock).statuses == [200]


WHITESPACE = b"GET /health HTTP/1.1\r\nx-request-id:" + b" " * 2 * HEAD_LIMIT + b"a\r\n\r\n"
NO_SPACE = b"POST /v1/messages HTTP/1.1\r\nhost:x\r\ncontent-length:600\r\n" + b"a:b\r\n" * 370
SPACING = {
    "whitespace-past-the-limit": ([WHITESPACE], 431),  # in one read
    "no-space-under-the-limit": ([NO_SPACE[:1000], NO_SPACE[1000:] + b"\r\n" + b"x" * 600], 401),
}


@pytest.mark.parametrize(("writes", "status"), SPACING.values(), ids=SPACING.keys())
def test_a_head_is_measured_as_sent(
    gateway: FunctionProcess, writes: list[bytes], status: int
) -> None:
    with connect(gateway) as sock:
        for data in writes:  # each a read of its own
            sock.sendall(data)
            server_has_read(gateway, sock)
        assert Responses.read(sock, 1).statuses == [status]  # 401: no key, the head was fine


def test_an_idle_connection_that_sent_only_crlf_after_an_answer_is_closed(
    gateway: FunctionProcess,
) -> None:
    with connect(gateway) as sock:
        sock.sendall(request("GET", "/health"))
        assert Responses.read(sock, 1).statuses == [200]
        sock.sendall(b"\r\n")
        sock.settimeout(HEAD_TIMEOUT_S + 6)  # past the head timeout and uvicorn's keep-alive
        assert sock.recv(1) == b""


def test_a_thousand_silent_connections_are_closed_and_health_answers(
    gateway: FunctionProcess,
) -> None:
    silent = [connect(gateway) for _ in range(1000)]
    try:
        assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200
        for sock in silent:
            assert sock.recv(1) == b""  # within the socket's 5 s: the head timeout is 1 s
    finally:
        for sock in silent:
            sock.close()
    assert httpx.get(f"{gateway.url}/health", timeout=5).status_code == 200


# --- framing: smuggling, folding, chunk sizes, HTTP/1.0 ---------------------------------------

SMUGGLING = {
    "cl-te": b"content-length: 57\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-cl": b"transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n",
    "two-cl": b"content-length: 0\r\ncontent-length: 57\r\n\r\n",
    "xchunked": b"transfer-encoding: xchunked\r\n\r\n0\r\n\r\n",
    "chunked-identity": b"transfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "space-before-colon": b"transfer-encoding : chunked\r\n\r\n0\r\n\r\n",
    "plus-length": b"content-length: +0\r\n\r\n",
    "obs-fold": b"x-a: a\r\n b\r\ncontent-length: 0\r\n\r\n",
    "chunk-size-zz": b"transfer-encoding: chunked\r\n\r\nzz\r\n",
    "chunk-size-overflow": b"transfer-encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\n",
    "chunk-size-negative": b"transfer-encoding: chunked\r\n\r\n-1\r\n",
}


@pytest.mark.parametrize("framing", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_ambiguous_or_broken_framing_is_refused_and_nothing_is_smuggled(
    gateway: FunctionProcess, framing: bytes
) -> None:
    smuggled = request("GET", "/health", x_request_id="smuggled")
    with connect(gateway) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n" + framing + smuggled)
        parsed = Responses.read(sock).parsed
    assert [status for status, _, _ in parsed] in ([], [400])
    assert all(headers.get("x-request-id") != "smuggled" for _, headers, _ in parsed)


@pytest.mark.parametrize("connection", [b"", b"connection: keep-alive\r\n"])
def test_http_1_0_is_answered_and_closed(gateway: FunctionProcess, connection: bytes) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.0\r\n" + connection + b"\r\n")
        assert Responses.read(sock).statuses == [200]


# --- the answer: a stream nobody reads, header bytes passed on ----------------------------------


def test_a_stream_the_client_never_reads_stalls_the_upstream_not_the_worker(
    gateway: FunctionProcess, upstream: Upstream
) -> None:
    stalled, sent = threading.Event(), [0]
    event = b"data: " + b"x" * 65536 + b"\n\n"

    def endless(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        conn.settimeout(1.0)  # a write that waits this long: nothing is reading
        with contextlib.suppress(TimeoutError):
            while sent[0] < 512 * 1024 * 1024:
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                sent[0] += len(event)
            return
        stalled.set()

    upstream.plays.put(endless)
    before = worker_rss_mb(gateway)
    with connect(gateway, rcvbuf=65536) as sock:
        sock.sendall(message("up", stream=True))
        stalled.wait(60)
        grown = worker_rss_mb(gateway) - before
    assert stalled.is_set() and sent[0] < 96 * 1024 * 1024  # kernel buffers, not the worker's
    assert grown < 32


def test_non_latin_1_bytes_of_a_callers_header_reach_the_upstream_as_sent(
    gateway: FunctionProcess, upstream: Upstream
) -> None:
    agent = "caf\u00e9-\u20ac".encode()  # UTF-8, as clients send it
    with connect(gateway) as sock:
        sock.sendall(message("up").replace(b"host: x", b"host: x\r\nuser-agent: " + agent))
        assert Responses.read(sock, 1).statuses == [200]
    assert (
        b"\r\nuser-agent: " + agent + b" agent-orchestrator-gateway/0.1\r\n" in upstream.heads[-1]
    )


# --- metrics: a worker that leaves, a thread without a loop (last: it replaces the worker) ------


def count_of(process: FunctionProcess, sample: str) -> float:
    text = httpx.get(f"{process.url}/metrics", headers={"x-api-key": "k-1"}, timeout=20).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(sample)
    )


@pytest.mark.xfail(
    strict=True,
    reason="uvicorn re-raises SIGTERM after its graceful shutdown with the default handler: the "
    "worker dies by the signal, atexit never runs, its last second of counts is lost",
)
def test_counts_of_a_worker_stopped_with_sigterm_survive_it(gateway: FunctionProcess) -> None:
    sample = 'agentorch_http_requests_total{function="gateway",route="/health",status="405"}'
    before = count_of(gateway, sample)  # a scrape flushes: what follows is only buffered
    for _ in range(7):
        assert httpx.post(f"{gateway.url}/health", timeout=5).status_code == 405
    children = Path(f"/proc/{gateway.process.pid}/task/{gateway.process.pid}/children")
    [worker] = children.read_text().split()
    os.kill(int(worker), signal.SIGTERM)
    wait_until(lambda: children.read_text().split() not in ([], [worker]), timeout_s=20)
    assert count_of(gateway, sample) == before + 7  # the old worker's files are final now


def test_counts_from_threads_without_an_event_loop_are_rendered() -> None:
    series = metrics.Counter("agentorch_test_threaded_total", "A counter.", ["case"]).labels("t")

    def count() -> None:
        for _ in range(100):
            series.inc()

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert 'agentorch_test_threaded_total{case="t"} 400.0' in metrics.render()[0].decode()


# --- shared.wire against broken upstreams -------------------------------------------------------

PeerPlay = Callable[[Peer], Awaitable[None]]


def after_first(play: PeerPlay) -> PeerPlay:
    """``play`` answers the first request; every later one is answered ``numbered``."""

    async def handler(peer: Peer) -> None:
        if peer.index == 1:
            await peer.read_request()
            await play(peer)
        await answering(numbered)(peer)

    return handler


def sending(*writes: bytes) -> PeerPlay:
    """Each write sent once the client has read (and parsed) the one before."""

    async def play(peer: Peer) -> None:
        client_port = peer.writer.get_extra_info("peername")[1]
        for data in writes:
            await peer.send(data)
            while not has_read(client_port, peer.server.port):
                await asyncio.sleep(0.005)

    return play


INFORMATIONAL = {
    "103-then-answer": [
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
        answer(b"real", ("x-a", "2")),
    ],
    "100-and-answer": [b"HTTP/1.1 100 Continue\r\nx-a: 1\r\n\r\n" + answer(b"real", ("x-a", "2"))],
}


@pytest.mark.parametrize("writes", INFORMATIONAL.values(), ids=INFORMATIONAL.keys())
def test_an_informational_answer_is_skipped(writes: list[bytes]) -> None:
    async def main() -> None:
        async with serve(after_first(sending(*writes))) as server, wire() as client:
            response = await post(client, server)
            got = (response.status, response.headers.get("x-a"), await response.read())
            assert got == (200, "2", b"real")
            assert await fetch(client, server) == b"answer 2"

    run(main)


def test_an_answer_before_the_body_is_written_is_returned() -> None:
    async def handler(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")  # the head only: it refuses the body
        await peer.send(answer(b"too large", ("connection", "close"), status=413))
        await peer.wait_eof()

    async def main() -> None:
        async with serve(handler) as server, wire() as client:
            response = await post(client, server, b"x" * 8_000_000)
            assert (response.status, await response.read()) == (413, b"too large")

    run(main)


EXTRA = {"garbage": b"EXTRA", "a-second-answer": answer(b"smuggled")}


@pytest.mark.parametrize("extra", EXTRA.values(), ids=EXTRA.keys())
def test_bytes_after_a_complete_answer_neither_fail_nor_join_it(extra: bytes) -> None:
    async def main() -> None:
        async with (
            serve(after_first(sending(answer(b"hello") + extra))) as server,
            wire() as client,
        ):
            response = await post(client, server)
            assert (response.headers, await response.read()) == ({"content-length": "5"}, b"hello")
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2  # that connection is not reused

    run(main)


def test_a_chunked_answer_with_trailers_and_non_latin_1_bytes_is_read_whole_and_reused() -> None:
    raw = "\xe2\x82\xac\xff"  # UTF-8 and worse, as latin-1 characters
    trailed = tw.head(tw.CHUNKED, ("x-u", raw)) + tw.chunk(b"abc") + b"0\r\nx-t: v\r\n\r\n"

    async def main() -> None:
        async with serve(after_first(sending(trailed))) as server, wire() as client:
            response = await post(client, server)
            assert (response.headers["x-u"], await response.read()) == (raw, b"abc")
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 1

    run(main)


def test_an_answer_with_both_length_and_chunked_is_refused_and_not_reused() -> None:
    both = tw.head(tw.CHUNKED, ("content-length", "3")) + tw.chunk(b"abc") + tw.LAST_CHUNK

    async def main() -> None:
        async with serve(after_first(sending(both))) as server, wire() as client:
            with pytest.raises(TransportError, match="not valid HTTP"):
                await fetch(client, server)
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2

    run(main)


def test_a_pooled_connection_closed_after_the_request_is_read_fails_that_request() -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 1:
            await peer.read_request()
            await peer.send(numbered(1))
            await peer.read_request()  # the next request, on the pooled connection: closed on
            return
        await answering(numbered)(peer)

    async def main() -> None:
        async with serve(handler) as server, wire() as client:
            assert await fetch(client, server) == b"answer 1"
            with pytest.raises(TransportError, match="mid-answer"):
                await fetch(client, server)
            assert await fetch(client, server) == b"answer 3"  # on a new connection
            assert server.accepted == 2

    run(main)


def test_connections_are_reused_when_their_descriptors_are_past_1023() -> None:
    async def main() -> None:
        async with serve(answering(numbered)) as server, wire() as client:
            assert [await fetch(client, server) for _ in range(2)] == [b"answer 1", b"answer 2"]
            assert server.accepted == 1

    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        run(main)
    finally:
        for fd in filler:
            os.close(fd)
