"""The orchestrator's outbound client over real sockets: what it sends, what it gives back, and
how a call that cannot complete fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from functions.orchestrator.outbound import OutboundHttp
from shared.context import REQUEST_ID
from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.wire import WireClient
from tests.orchestrator.fakes import FakeEndpoint, closed_port_url

pytestmark = pytest.mark.anyio
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def endpoint() -> AsyncIterator[FakeEndpoint]:
    fake = FakeEndpoint("/v1/messages")
    await fake.start()
    yield fake
    await fake.close()


async def raw_server(handler: Handler) -> tuple[asyncio.Server, str]:
    """A server speaking what ``handler`` writes; each connection is closed after it."""

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/messages"


async def test_json_goes_out_with_the_request_id_and_comes_back_decoded(
    http: OutboundHttp, endpoint: FakeEndpoint
) -> None:
    endpoint.enqueue((201, {"ok": "é"}, {"X-Gateway-Provider": "local"}))
    token = REQUEST_ID.set("req-42")
    try:
        answer = await http.request_json(
            "POST", f"{endpoint.url}/v1/messages", body={"q": "é"}, headers={"a": "1"}
        )
    finally:
        REQUEST_ID.reset(token)

    assert answer.status == 201 and answer.data == {"ok": "é"}
    assert answer.headers["x-gateway-provider"] == "local"
    [sent] = endpoint.received
    assert sent.body == {"q": "é"}
    assert sent.headers["x-request-id"] == "req-42" and sent.headers["a"] == "1"
    assert sent.headers["content-type"] == "application/json"


async def test_a_body_that_is_not_json_is_none(http: OutboundHttp) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 5\r\n\r\noops!")
        await writer.drain()
        await reader.read()  # until the client is done with the connection

    server, url = await raw_server(plain)
    async with server:
        answer = await http.request_json("GET", url)
    assert answer.status == 502 and answer.data is None


async def test_unreachable_and_silent_upstreams_name_the_service(http: OutboundHttp) -> None:
    with pytest.raises(UpstreamUnavailable, match="agent calculator is unreachable"):
        await http.request_json("GET", closed_port_url(), service="agent calculator")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server, url = await raw_server(silent)
    async with server:
        with pytest.raises(UpstreamTimeout, match="the model gateway did not answer within"):
            await http.request_json("GET", url, timeout_s=0.2, service="the model gateway")


async def test_an_answer_cut_short_fails_and_frees_its_connection(endpoint: FakeEndpoint) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial')
        await writer.drain()

    http = OutboundHttp(WireClient(limit=1))  # a connection not given back would block the next
    server, url = await raw_server(cut)
    async with server:
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await http.request_json("GET", url)
    answer = await http.request_json("POST", f"{endpoint.url}/v1/messages", body={}, timeout_s=5)
    assert answer.status == 200
    await http.close()
