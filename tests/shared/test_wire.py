"""shared.wire against real sockets: a scripted asyncio server on 127.0.0.1 in every test.

Each test runs in its own event loop (``asyncio.run``) under one ``asyncio.timeout``. The server
answers exactly the bytes a test scripts and counts the connections it accepts, so reuse,
framing, failures and the connection limit are seen from the other end of the wire. Tests wait
on events the server sets, never sleep to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest

from shared.errors import TransportError
from shared.wire import HIGH_WATER, Url, WireClient, WireResponse

TIMEOUT_S = 5.0
"""Every test's bound: far above what its loopback exchanges take, so only a hang reaches it."""


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT_S):
            await test()

    asyncio.run(bounded())


# --- the scripted server --------------------------------------------------------------------


class Peer:
    """The server's end of one accepted connection."""

    def __init__(
        self, server: Server, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.index = index
        """1 for the first connection the server accepted, 2 for the next..."""
        self.reader = reader
        self.writer = writer

    async def read_request(self) -> bytes | None:
        """One request as it came (head and body), or None when the client closed instead."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.server.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_eof(self) -> None:
        """Until the client closes its end (whatever else it sends is dropped)."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    def reset(self) -> None:
        """Close with a TCP reset rather than a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """Plays ``handler`` on every accepted connection; the handler's return closes it."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.port = 0
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        """The most connections open at once, as the server saw them."""
        self.requests: list[bytes] = []
        """Every request read, in order, over all connections."""
        self._peers: list[tuple[asyncio.Task[None], Peer]] = []
        self._failures: list[Exception] = []

    def url(self, path: str = "/") -> Url:
        return Url.parse(f"http://127.0.0.1:{self.port}{path}")

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback that starts its own task: asyncio 3.11 logs an error for a cancelled
        # task it started itself, and stop() cancels the handlers still running.
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        peer = Peer(self, self.accepted, reader, writer)
        self._peers.append((asyncio.get_running_loop().create_task(self._play(peer)), peer))

    async def _play(self, peer: Peer) -> None:
        try:
            await self._handler(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, as several tests make it
        except Exception as exc:  # a broken script: raised when the test leaves the server
            self._failures.append(exc)
        finally:
            self.open -= 1
            peer.writer.close()

    async def stop(self) -> None:
        for task, peer in self._peers:
            task.cancel()
            peer.writer.close()
        await asyncio.gather(*(task for task, _ in self._peers), return_exceptions=True)
        if self._failures:
            raise self._failures[0]


@contextlib.asynccontextmanager
async def serve(handler: Handler, port: int = 0) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server.accept, "127.0.0.1", port)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await server.stop()
        await listener.wait_closed()


@contextlib.asynccontextmanager
async def wire(limit: int = 100) -> AsyncIterator[WireClient]:
    client = WireClient(limit=limit)
    try:
        yield client
    finally:
        await client.close()


def head(*headers: tuple[str, str], status: int = 200) -> bytes:
    lines = [f"HTTP/1.1 {status} Reason", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(body: bytes = b"", *headers: tuple[str, str], status: int = 200) -> bytes:
    return head(*headers, ("content-length", str(len(body))), status=status) + body


CHUNKED = ("transfer-encoding", "chunked")
LAST_CHUNK = b"0\r\n\r\n"


def chunk(piece: bytes) -> bytes:
    return f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


def answering(make: Callable[[int], bytes]) -> Handler:
    """Keeps each connection open, answering its requests with ``make(n)``, ``n`` counting
    the server's requests from 1 over all connections."""

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(make(len(peer.server.requests)))

    return handler


def numbered(n: int) -> bytes:
    return answer(f"answer {n}".encode())


def first_then_numbered(first: bytes) -> Handler:
    """``answering``, with ``first`` for the first request."""
    return answering(lambda n: first if n == 1 else numbered(n))


async def post(client: WireClient, server: Server, body: bytes = b"{}") -> WireResponse:
    return await client.request("POST", server.url("/v1/messages"), {}, body)


async def fetch(client: WireClient, server: Server) -> bytes:
    return await (await post(client, server)).read()


# --- 1. keep-alive --------------------------------------------------------------------------


def test_sequential_requests_share_one_connection_each_with_its_own_body() -> None:
    async def main() -> None:
        async with serve(answering(numbered)) as server, wire() as client:
            bodies = [await fetch(client, server) for _ in range(3)]

            assert bodies == [b"answer 1", b"answer 2", b"answer 3"]
            assert server.accepted == 1

    run(main)


def test_close_after_read_keeps_the_connection_pooled() -> None:
    # The provider closes every response in a finally, after read() gave its connection back.
    async def main() -> None:
        async with serve(answering(numbered)) as server, wire() as client:
            first = await post(client, server)
            assert await first.read() == b"answer 1"
            first.close()

            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 1

    run(main)


def test_release_of_a_whole_answer_pools_the_connection() -> None:
    async def main() -> None:
        async with serve(first_then_numbered(answer(status=204))) as server, wire() as client:
            empty = await post(client, server)
            assert empty.status == 204
            empty.release()

            assert (await post(client, server)).status == 200
            assert server.accepted == 1

    run(main)


def test_a_prefix_of_a_short_answer_is_all_of_it_and_pools_the_connection() -> None:
    async def main() -> None:
        first = answer(b"refused", status=400)
        async with serve(first_then_numbered(first)) as server, wire() as client:
            assert await (await post(client, server)).prefix(64) == b"refused"
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 1

    run(main)


def test_a_prefix_of_a_long_answer_stops_there_and_drops_the_connection() -> None:
    async def main() -> None:
        dropped = asyncio.Event()

        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(head(("content-length", str(1 << 30))) + b"x" * 100_000)
                await peer.wait_eof()  # the rest of the 1 GiB is never asked for
                dropped.set()
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            assert await (await post(client, server)).prefix(10) == b"x" * 10
            async with asyncio.timeout(5):
                await dropped.wait()
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2

    run(main)


def test_release_of_an_unread_answer_closes_its_connection() -> None:
    async def main() -> None:
        dropped = asyncio.Event()

        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(head(("content-length", "10")) + b"abc")  # 7 bytes owed
                await peer.wait_eof()
                dropped.set()
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            (await post(client, server)).release()
            await dropped.wait()

            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2

    run(main)


# --- 2. the request as written --------------------------------------------------------------


def test_the_request_is_written_as_given() -> None:
    async def main() -> None:
        async with serve(answering(numbered)) as server, wire() as client:
            url = server.url("/v1/messages?beta=true")
            headers = {"x-api-key": "secret", "content-type": "application/json"}
            await (await client.request("POST", url, headers, b'{"a": 1}')).read()

            assert server.requests == [
                b"POST /v1/messages?beta=true HTTP/1.1\r\n"
                + f"host: 127.0.0.1:{server.port}\r\n".encode()
                + b"x-api-key: secret\r\n"
                b"content-type: application/json\r\n"
                b"content-length: 8\r\n"
                b"\r\n"
                b'{"a": 1}'
            ]

    run(main)


def test_a_large_body_arrives_whole() -> None:
    body = random.Random(2).randbytes(300_000)  # over the size written in one piece with the head

    async def main() -> None:
        async with serve(answering(numbered)) as server, wire() as client:
            await (await post(client, server, body)).read()

            (request,) = server.requests
            assert b"\r\ncontent-length: 300000\r\n" in request
            assert request.endswith(b"\r\n\r\n" + body)

    run(main)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-note", "a\r\nx-injected: 1"),
        ("x-note", "a\nx-injected: 1"),
        ("x-note", "a\rx-injected: 1"),
        ("x-injected\r\nx-note", "1"),
        ("x-injected: 1\nx-note", "1"),
    ],
    ids=["crlf-in-value", "lf-in-value", "cr-in-value", "crlf-in-name", "colon-and-lf-in-name"],
)
def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
    name: str, value: str
) -> None:
    async def main() -> None:
        async with serve(answering(numbered)) as server, wire(limit=1) as client:
            with pytest.raises(ValueError, match="line break"):
                await client.request("POST", server.url(), {name: value}, b"{}")
            await fetch(client, server)  # the next request: the only one the server sees

            assert server.accepted == 1
            (request,) = server.requests
            assert b"injected" not in request

    run(main)


# --- 3. framing -----------------------------------------------------------------------------


def test_a_content_length_body_sent_in_pieces_is_read_whole() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head(("content-length", "11")) + b"hello")
            await peer.send(b" world")
            await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            assert await fetch(client, server) == b"hello world"
            assert await fetch(client, server) == b"answer 2"  # and the connection is reused
            assert server.accepted == 1

    run(main)


def test_a_chunked_answer_is_read_whole() -> None:
    pieces = [b"one ", b"two ", b"three"]

    async def main() -> None:
        chunked = head(CHUNKED) + b"".join(map(chunk, pieces)) + LAST_CHUNK
        async with serve(first_then_numbered(chunked)) as server, wire() as client:
            assert await fetch(client, server) == b"one two three"
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 1

    run(main)


def test_chunks_yields_each_piece_as_it_arrives_in_order() -> None:
    pieces = [b"alpha", b"beta", b"gamma", b"delta"]

    async def main() -> None:
        received: asyncio.Queue[None] = asyncio.Queue()

        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head(CHUNKED))
            for piece in pieces:  # the next only once the client has the last
                await peer.send(chunk(piece))
                await received.get()
            await peer.send(LAST_CHUNK)
            await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            response = await post(client, server)
            got = []
            async for piece in response.chunks():
                got.append(piece)
                received.put_nowait(None)

            assert got == pieces
            assert await fetch(client, server) == b"answer 2"  # read to its end: pooled
            assert server.accepted == 1

    run(main)


def test_an_answer_without_length_ends_with_the_connection_which_is_not_reused() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(head() + b"until the ")
                await peer.send(b"end")
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            assert await fetch(client, server) == b"until the end"
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2

    run(main)


# --- 4. failures ----------------------------------------------------------------------------


def test_the_server_closing_mid_body_fails_the_read() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(head(("content-length", "100")) + b"ten bytes.")
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire(limit=1) as client:
            response = await post(client, server)
            with pytest.raises(TransportError, match="mid-answer"):
                await response.read()
            response.close()

            assert await fetch(client, server) == b"answer 2"  # on a new connection
            assert server.accepted == 2

    run(main)


def test_the_server_closing_before_any_answer_fails_the_request() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()  # and closes without a word
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire(limit=1) as client:
            with pytest.raises(TransportError):
                await post(client, server)

            assert await fetch(client, server) == b"answer 2"  # its slot was given back
            assert server.accepted == 2

    run(main)


def test_a_refused_connection_is_a_wire_error() -> None:
    async def main() -> None:
        with socket.socket() as bound:  # bound, never listening: a connection is refused
            bound.bind(("127.0.0.1", 0))
            url = Url.parse(f"http://127.0.0.1:{bound.getsockname()[1]}/")
            async with wire(limit=1) as client:
                for _ in range(2):  # the second finds its slot given back
                    with pytest.raises(TransportError, match="cannot connect"):
                        await client.request("POST", url, {}, b"{}")

    run(main)


# --- 5. what is not reused ------------------------------------------------------------------


def test_an_answer_saying_connection_close_is_not_reused() -> None:
    async def main() -> None:
        dropped = asyncio.Event()

        async def handler(peer: Peer) -> None:
            if peer.index == 1:  # says close, but leaves it to the client
                await peer.read_request()
                await peer.send(answer(b"first", ("connection", "close")))
                await peer.wait_eof()
                dropped.set()
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            assert await fetch(client, server) == b"first"
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2
            await dropped.wait()

    run(main)


def test_a_pooled_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def main() -> None:
        close_now, closed = asyncio.Event(), asyncio.Event()

        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(numbered(1))
                await close_now.wait()
                await peer.close()
                closed.set()
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            assert await fetch(client, server) == b"answer 1"
            close_now.set()
            await closed.wait()

            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2

    run(main)


def test_a_connection_the_server_closed_right_after_answering_is_not_reused() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            if peer.index == 1:  # keep-alive answer, then closed at once (an idle timeout)
                await peer.read_request()
                await peer.send(numbered(1))
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            assert await fetch(client, server) == b"answer 1"
            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 2

    run(main)


# --- 6. a stalled stream --------------------------------------------------------------------


def test_a_stalled_stream_times_out_and_close_drops_its_connection() -> None:
    async def main() -> None:
        dropped = asyncio.Event()

        async def handler(peer: Peer) -> None:
            if peer.index == 1:
                await peer.read_request()
                await peer.send(head(CHUNKED) + chunk(b"start"))
                await peer.wait_eof()  # and then nothing more
                dropped.set()
            else:
                await answering(numbered)(peer)

        async with serve(handler) as server, wire(limit=1) as client:
            response = await post(client, server)
            got = []
            with pytest.raises(TimeoutError):
                async for piece in response.chunks(idle_timeout_s=0.2):
                    got.append(piece)
            assert got == [b"start"]

            response.close()
            await dropped.wait()
            assert await fetch(client, server) == b"answer 2"  # its slot was given back

    run(main)


def test_a_cancelled_read_drops_its_connection() -> None:
    async def main() -> None:
        dropped = asyncio.Event()

        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head(CHUNKED) + chunk(b"start"))
            await peer.wait_eof()
            dropped.set()

        async with serve(handler) as server, wire() as client:
            response = await post(client, server)
            started = asyncio.Event()

            async def reading() -> None:
                async for _ in response.chunks():
                    started.set()

            task = asyncio.create_task(reading())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

            await dropped.wait()

    run(main)


# --- 7. the connection limit ----------------------------------------------------------------


def held_answers(close: bool) -> tuple[Handler, asyncio.Event, asyncio.Event]:
    """A handler that holds its answers until ``release`` is set (``two_held``: two requests
    wait for it), each saying and doing ``connection: close`` if ``close``."""
    release, two_held = asyncio.Event(), asyncio.Event()
    headers = [("connection", "close")] if close else []

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            n = len(peer.server.requests)
            if n == 2:
                two_held.set()
            await release.wait()
            await peer.send(answer(f"answer {n}".encode(), *headers))
            if close:
                return

    return handler, release, two_held


async def four_requests_through_two_slots(close: bool) -> Server:
    handler, release, two_held = held_answers(close)
    async with serve(handler) as server, wire(limit=2) as client:
        tasks = [asyncio.create_task(fetch(client, server)) for _ in range(4)]
        await two_held.wait()
        release.set()
        bodies = await asyncio.gather(*tasks)

        assert sorted(bodies) == [f"answer {n}".encode() for n in range(1, 5)]
        assert server.most_open <= 2
    return server


def test_the_limit_bounds_open_connections_when_each_answer_closes_its_own() -> None:
    async def main() -> None:
        server = await four_requests_through_two_slots(close=True)
        assert server.accepted == 4

    run(main)


def test_the_limit_bounds_open_connections_and_waiting_requests_reuse_them() -> None:
    async def main() -> None:
        server = await four_requests_through_two_slots(close=False)
        assert server.accepted == 2

    run(main)


# --- 8. flow control ------------------------------------------------------------------------


def test_a_large_stream_read_slowly_arrives_whole_and_in_order() -> None:
    body = random.Random(8).randbytes(4 * 1024 * 1024)
    piece = 64 * 1024

    async def main() -> None:
        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head(CHUNKED))
            for start in range(0, len(body), piece):
                await peer.send(chunk(body[start : start + piece]))
            await peer.send(LAST_CHUNK)
            await answering(numbered)(peer)

        async with serve(handler) as server, wire() as client:
            response = await post(client, server)
            digest, size = hashlib.sha256(), 0
            async for part in response.chunks():
                digest.update(part)
                size += len(part)
                for _ in range(4):  # a slow reader: the loop turns, and the server sends, meanwhile
                    await asyncio.sleep(0)

            assert size == len(body)
            assert digest.digest() == hashlib.sha256(body).digest()
            assert await fetch(client, server) == b"answer 2"  # and the connection is fine after
            assert server.accepted == 1

    run(main)


def test_release_of_a_whole_but_unread_large_answer_leaves_a_working_connection() -> None:
    # One byte over HIGH_WATER: reading pauses exactly when the last byte is in, with the answer
    # complete, so the connection is pooled on release().
    big = answer(b"x" * (HIGH_WATER + 1))

    async def main() -> None:
        async with serve(first_then_numbered(big)) as server, wire() as client:
            response = await post(client, server)
            # Nothing public says the whole answer is in; this module's own state does.
            while not response._connection.complete:
                await asyncio.sleep(0)
            response.release()

            assert await fetch(client, server) == b"answer 2"
            assert server.accepted == 1

    run(main)


# --- 9. what is not HTTP --------------------------------------------------------------------


def test_garbage_for_an_answer_is_a_wire_error() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(b"\x00\xffgarbage, not HTTP\r\n\r\n")
            await peer.wait_eof()

        async with serve(handler) as server, wire() as client:
            with pytest.raises(TransportError, match="not valid HTTP"):
                await post(client, server)

    run(main)


def test_a_broken_chunk_is_a_wire_error() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head(CHUNKED) + chunk(b"fine") + b"zz; not a size\r\n")
            await peer.wait_eof()

        async with serve(handler) as server, wire() as client:
            response = await post(client, server)
            with pytest.raises(TransportError, match="not valid HTTP"):
                await response.read()
            response.close()

    run(main)


def test_a_reset_ends_an_answer_without_length_in_an_error() -> None:
    async def main() -> None:
        got_first = asyncio.Event()

        async def handler(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(head() + b"the first part")
            await got_first.wait()
            peer.reset()

        async with serve(handler) as server, wire() as client:
            response = await post(client, server)
            pieces = response.chunks()
            assert await anext(pieces) == b"the first part"
            got_first.set()
            with pytest.raises(TransportError):
                await anext(pieces)
            response.close()

    run(main)


# --- 10. one client, several loops ----------------------------------------------------------


def test_a_client_works_in_successive_event_loops() -> None:
    # limit=1: the first loop's connection, left idle in the pool, must neither be reused (its
    # loop is gone) nor still count against the limit in the next loop.
    client = WireClient(limit=1)
    port = 0
    seen: list[tuple[list[bytes], int]] = []

    async def one_loop() -> None:
        nonlocal port
        async with serve(answering(numbered), port) as server:
            port = server.port  # the same host and port in the next loop
            seen.append(([await fetch(client, server) for _ in range(2)], server.accepted))

    run(one_loop)
    run(one_loop)

    assert seen == [([b"answer 1", b"answer 2"], 1)] * 2


# --- 11. error statuses ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 429, 500, 529])
def test_error_statuses_are_answers_with_their_headers(status: int) -> None:
    async def main() -> None:
        refusal = answer(
            b'{"type": "error"}',
            ("Retry-After", "7"),
            ("X-Thing", "a"),
            ("x-thing", "b"),
            status=status,
        )
        async with serve(first_then_numbered(refusal)) as server, wire() as client:
            response = await post(client, server)

            assert response.status == status
            assert response.headers == {
                "retry-after": "7",
                "x-thing": "a, b",
                "content-length": "17",
            }
            assert await response.read() == b'{"type": "error"}'
            assert await fetch(client, server) == b"answer 2"  # an error answer is reusable
            assert server.accepted == 1

    run(main)
