"""The outbound seam: the same tests against both transports, ``wire`` and ``httpx``.

Each test runs a scripted server on 127.0.0.1 (``tests.shared.test_wire``'s, which answers
exactly the bytes a test writes and counts connections) and one transport built as a function
builds it, from ``OUTBOUND_TRANSPORT``. Whatever the implementation, the caller sees the same
answers and the same ``shared.errors`` exceptions.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from functions.gateway.providers.anthropic import AnthropicProvider
from functions.gateway.providers.base import ProviderCall
from shared.aio import AsyncHttp
from shared.errors import (
    AnswerTooLarge,
    ConfigError,
    ConnectTimeout,
    SentTimeout,
    TransportError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.transport import (
    Answer,
    Traced,
    Transport,
    chosen,
    outbound_transport,
    upstream_failure,
)
from shared.transport_httpx import HttpxTransport, http2_available
from shared.wire import WireClient
from tests.fakes.transport import FakeTransport
from tests.shared.test_wire import (
    CHUNKED,
    LAST_CHUNK,
    Peer,
    Server,
    answer,
    answering,
    chunk,
    head,
    numbered,
    serve,
)

TIMEOUT_S = 5.0
"""Every test's bound: far above what its loopback exchanges take, so only a hang reaches it."""
KINDS = ("wire", "httpx")
Scenario = Callable[[Transport], Coroutine[Any, Any, None]]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # tests/conftest.py leaves no proxy variable set


@pytest.fixture
def run(kind: str) -> Callable[[Scenario], None]:
    """Runs a scenario in its own loop, with a transport of ``kind``, closed after it."""

    def runner(scenario: Scenario) -> None:
        async def bounded() -> None:
            transport = outbound_transport({"OUTBOUND_TRANSPORT": kind})
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    await scenario(transport)
            finally:
                await transport.close()

        asyncio.run(bounded())

    return runner


def url(server: Server, path: str = "/v1/messages") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def free_port() -> int:
    with socket.socket() as probe:  # nobody listens on it once the socket is closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_environment_picks_the_implementation(kind: str) -> None:
    transport = outbound_transport({"OUTBOUND_TRANSPORT": kind})
    assert isinstance(transport, Traced)  # every outbound call carries the trace context
    assert isinstance(transport.inner, WireClient if kind == "wire" else HttpxTransport)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "wire"),
        ({"OUTBOUND_TRANSPORT": "HTTPX"}, "httpx"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "httpx"),
        ({"http_proxy": "http://proxy:3128"}, "httpx"),
        ({"OUTBOUND_TRANSPORT": "wire", "HTTPS_PROXY": "http://proxy:3128"}, "wire"),
        ({"NO_PROXY": "*"}, "wire"),
    ],
)
def test_a_proxy_variable_picks_httpx_unless_the_transport_is_named(
    environ: dict[str, str], expected: str
) -> None:
    assert chosen(environ) == expected


def test_httpx_offers_http2_exactly_when_h2_is_installed() -> None:
    assert HttpxTransport().http2 is http2_available()
    assert HttpxTransport(http2=False).http2 is False


def test_an_unknown_transport_stops_the_function_at_start() -> None:
    with pytest.raises(ConfigError, match="OUTBOUND_TRANSPORT"):
        chosen({"OUTBOUND_TRANSPORT": "curl"})


def test_status_headers_and_body_come_back_and_the_request_goes_as_given(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(transport: Transport) -> None:
        reply = answer(b'{"ok":true}', ("X-Thing", "a"), ("x-thing", "b"), status=201)
        async with serve(answering(lambda n: reply)) as server:
            got = await transport.exchange(
                "POST", url(server, "/v1/messages?beta=true"), {"x-api-key": "k"}, b"{}"
            )
            assert (got.status, got.body) == (201, b'{"ok":true}')
            assert got.headers["x-thing"] == "a, b"
            sent = server.requests[0].decode("latin-1").lower()
            assert sent.startswith("post /v1/messages?beta=true http/1.1\r\n")
            assert f"host: 127.0.0.1:{server.port}\r\n" in sent
            assert "x-api-key: k\r\n" in sent and "content-length: 2\r\n" in sent
            assert "accept-encoding" not in sent  # nothing to decode: bodies pass through

    run(scenario)


@pytest.mark.parametrize("status", [400, 429, 500, 529])
def test_an_error_status_is_an_answer_not_an_exception(
    run: Callable[[Scenario], None], status: int
) -> None:
    async def scenario(transport: Transport) -> None:
        reply = answer(b"no", ("retry-after", "3"), status=status)
        async with serve(answering(lambda n: reply)) as server:
            got = await transport.exchange("POST", url(server), {}, b"{}")
            assert (got.status, got.headers["retry-after"], got.body) == (status, "3", b"no")

    run(scenario)


def test_sequential_requests_reuse_one_connection(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        async with serve(answering(numbered)) as server:
            for n in (1, 2, 3):
                got = await transport.exchange("POST", url(server), {}, b"{}")
                assert got.body == f"answer {n}".encode()
            assert server.accepted == 1

    run(scenario)


def test_a_stream_arrives_piece_by_piece(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        step = asyncio.Event()

        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head(CHUNKED) + chunk(b"event: one\n\n"))
            await step.wait()  # the second piece only once the client has the first
            await peer.send(chunk(b"event: two\n\n") + LAST_CHUNK)
            await peer.wait_eof()

        async with serve(handler) as server:
            response = await transport.request("POST", url(server), {}, b"{}")
            assert response.status == 200
            pieces = []
            async for piece in response.chunks(idle_timeout_s=TIMEOUT_S):
                pieces.append(piece)
                step.set()
            assert b"".join(pieces) == b"event: one\n\nevent: two\n\n"
            assert pieces[0] == b"event: one\n\n"

    run(scenario)


def test_a_stalled_stream_times_out_and_the_transport_still_works(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(transport: Transport) -> None:
        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(head(CHUNKED) + chunk(b"start"))
                await peer.wait_eof()  # and then nothing more
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server:
            response = await transport.request("POST", url(server), {}, b"{}")
            got = []
            with pytest.raises(TimeoutError):
                async for piece in response.chunks(idle_timeout_s=0.2):
                    got.append(piece)
            assert got == [b"start"]
            response.close()
            assert (await transport.exchange("POST", url(server), {}, b"{}")).body == b"answer 2"

    run(scenario)


def test_a_prefix_reads_no_more_than_asked(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        big = answer(b"x" * 100_000)
        async with serve(answering(lambda n: big)) as server:
            response = await transport.request("POST", url(server), {}, b"{}")
            assert await response.prefix(10) == b"x" * 10

    run(scenario)


def test_an_answer_over_the_limit_is_answer_too_large(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        big = answer(b"x" * 100_000)
        async with serve(answering(lambda n: big)) as server:
            with pytest.raises(AnswerTooLarge, match="exceeds 1000 bytes"):
                await transport.exchange("POST", url(server), {}, b"{}", limit=1000)

    run(scenario)


def test_a_refused_connection_is_a_transport_error(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        with pytest.raises(TransportError, match="cannot connect"):
            await transport.exchange("POST", f"http://127.0.0.1:{free_port()}/", {}, b"{}")

    run(scenario)


def test_an_unknown_host_is_a_transport_error(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        with pytest.raises(TransportError, match="cannot connect"):
            await transport.exchange("POST", "http://nowhere.invalid/", {}, b"{}")

    run(scenario)


def test_a_server_that_never_answers_is_the_callers_timeout(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(transport: Transport) -> None:
        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.wait_eof()

        async with serve(handler) as server:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await transport.exchange("POST", url(server), {}, b"{}")

    run(scenario)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"SPDY/9 nonsense\r\n\r\n", id="not-http"),
        pytest.param(head(("content-length", "100")) + b"short", id="cut-mid-body"),
        pytest.param(b"", id="closed-before-answering"),
    ],
)
def test_a_broken_answer_is_a_transport_error(
    run: Callable[[Scenario], None], reply: bytes
) -> None:
    async def scenario(transport: Transport) -> None:
        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(reply)  # then the connection closes

        async with serve(handler) as server:
            with pytest.raises(TransportError):
                await transport.exchange("POST", url(server), {}, b"{}")

    run(scenario)


def test_json_calls_name_the_service_in_their_failures(run: Callable[[Scenario], None]) -> None:
    async def scenario(transport: Transport) -> None:
        http = AsyncHttp(transport)
        with pytest.raises(UpstreamUnavailable, match="the agent is unreachable") as caught:
            await http.request_json("GET", f"http://127.0.0.1:{free_port()}/", service="the agent")
        assert caught.value.status_code == 503

    run(scenario)


# --- proxies: httpx honours the environment, as a user behind one needs ----------------------


async def proxied_request(transport: Transport, target: str) -> bytes:
    got = await transport.exchange("POST", target, {}, b"{}")
    return got.body


@pytest.fixture
def proxy_run() -> Callable[[Callable[[], Any]], None]:
    def runner(main: Callable[[], Any]) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(TIMEOUT_S):
                await main()

        asyncio.run(bounded())

    return runner


def test_httpx_sends_through_the_proxy_the_environment_names(
    proxy_run: Callable[[Callable[[], Any]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        # The scripted server plays a forward proxy: a plain-HTTP request reaches it in
        # absolute form, and it answers on the target's behalf.
        async with serve(answering(lambda n: answer(b"via proxy"))) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            transport = outbound_transport()  # a proxy variable: httpx, unless told otherwise
            assert isinstance(transport, Traced)
            assert isinstance(transport.inner, HttpxTransport)
            try:
                assert await proxied_request(transport, "http://upstream.test/v1/x") == b"via proxy"
            finally:
                await transport.close()
            line = proxy.requests[0].split(b"\r\n", 1)[0]
            assert line == b"POST http://upstream.test/v1/x HTTP/1.1"

    proxy_run(main)


def test_httpx_goes_direct_to_a_host_no_proxy_names(
    proxy_run: Callable[[Callable[[], Any]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with serve(answering(lambda n: answer(b"via proxy"))) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            monkeypatch.setenv("NO_PROXY", "upstream.test")
            transport = outbound_transport()
            try:
                with pytest.raises(TransportError, match="cannot connect"):  # no such host
                    await proxied_request(transport, "http://upstream.test/v1/x")
            finally:
                await transport.close()
            assert proxy.accepted == 0

    proxy_run(main)


def test_httpx_goes_direct_to_a_dotless_host_as_compose_services_are_named(
    proxy_run: Callable[[Callable[[], Any]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A service added by `agentorch new agent` is reached directly with no NO_PROXY entry.
    async def main() -> None:
        async with serve(answering(lambda n: answer(b"via proxy"))) as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            transport = outbound_transport()
            try:
                with pytest.raises(TransportError, match="cannot connect"):  # no such host
                    await proxied_request(transport, "http://wx-remote-agent:8080/v1/x")
                assert await proxied_request(transport, "http://upstream.test/v1/x") == b"via proxy"
            finally:
                await transport.close()
            assert proxy.accepted == 1

    proxy_run(main)


def test_httpx_reaches_the_loopback_directly_whatever_the_proxy(
    proxy_run: Callable[[Callable[[], Any]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with (
            serve(answering(lambda n: answer(b"via proxy"))) as proxy,
            serve(answering(lambda n: answer(b"direct"))) as upstream,
        ):
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            transport = outbound_transport()
            try:
                assert await proxied_request(transport, url(upstream)) == b"direct"
            finally:
                await transport.close()
            assert proxy.accepted == 0

    proxy_run(main)


# --- one mapping from transport failures to what a caller answers ----------------------------


@pytest.mark.parametrize(
    ("error", "streaming", "kind", "message"),
    [
        (ConnectTimeout("no connection to h:1 within 5 s"), False, ConnectTimeout, "accept a"),
        (TimeoutError(), False, SentTimeout, "did not answer within 2 s"),
        (TimeoutError(), True, UpstreamTimeout, "stream stalled for 2 s"),
        (AnswerTooLarge("the answer exceeds 9 bytes"), False, AnswerTooLarge, "exceeds 9"),
        (TransportError("cannot connect to h:1"), False, TransportError, "svc is unreachable"),
        (TransportError("mid-answer"), True, TransportError, "svc stream broke: mid-answer"),
        (ConnectionResetError("reset"), False, TransportError, "unreachable: reset"),
    ],
)
def test_upstream_failure_names_the_service_and_keeps_the_kind(
    error: BaseException, streaming: bool, kind: type[Exception], message: str
) -> None:
    mapped = upstream_failure("svc", error, 2.0, streaming=streaming)
    assert type(mapped) is kind
    assert message in mapped.message


def test_a_sent_timeout_is_a_504_and_a_transport_error_a_503() -> None:
    assert upstream_failure("svc", TimeoutError(), 1).status_code == 504
    assert upstream_failure("svc", TransportError("x"), 1).status_code == 503


# --- injected: a caller takes whatever transport it is given ---------------------------------


def test_a_provider_sends_through_the_transport_it_is_given() -> None:
    fake = FakeTransport()
    fake.enqueue(TransportError("cannot connect to api:443"), Answer(200, {}, b'{"id":"m"}'))
    provider = AnthropicProvider({"ANTHROPIC_API_KEY": "k"}, transport=fake)
    call = ProviderCall(body={"messages": []}, model="claude", timeout_s=5.0)

    async def main() -> None:
        with pytest.raises(TransportError, match="anthropic is unreachable: cannot connect"):
            await provider.complete(call)
        assert await provider.complete(call) == b'{"id":"m"}'
        await provider.close()

    asyncio.run(main())
    assert [sent.url for sent in fake.requests] == [provider.url] * 2
    assert fake.requests[0].headers["x-api-key"] == "k" and fake.closed
