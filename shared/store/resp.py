"""A lean Redis client: RESP2 over one asyncio connection, every call pipelined on it.

Why not redis-py's asyncio client: it costs ~0.3-0.5 ms of CPU per call (a connection taken
from its pool and given back, a health check, its retry wrapper, one ``send`` per command),
which, at the seven calls of a session's task, cost a busy orchestrator a third of its
throughput (bench/sessions.py). Here a call is a command encoded into the connection's
outgoing buffer and a future: the commands of one turn of the event loop leave in one write,
and the replies that arrive together are parsed together, by hiredis (its C reply parser).
Redis answers a connection's commands in the order they came, so the replies resolve the
futures first in, first out; one connection is as fast as many (Redis runs one command at a
time), and each process keeps one.

What it takes from the URL (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for
TLS with the system's certificate authorities): AUTH and SELECT are sent once per connection.
A connection that broke (a restarted server) is replaced on the next call, and a call that
found it broken is sent once more on the new one, as redis-py's own retry did. A call that is
not answered waits until its caller's deadline (``GuardedStore``); its reply, if one comes,
is read and dropped, so the order of the others holds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

DEFAULT_PORT = 6379

Arg = bytes | str | int


class RespError(Exception):
    """An error reply (``-ERR ...``, ``-WRONGTYPE ...``, ``-NOSCRIPT ...``)."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tls: bool
    db: int
    username: str | None
    password: str | None

    @classmethod
    def of(cls, url: str) -> Address:
        parts = urlsplit(url)
        path = parts.path.strip("/")
        return cls(
            parts.hostname or "localhost",
            parts.port or DEFAULT_PORT,
            parts.scheme.lower() == "rediss",
            int(path) if path else 0,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password is not None else None,
        )


def encode(args: tuple[Arg, ...]) -> bytes:
    """A command as RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Connection(asyncio.Protocol):
    """One connection: commands out in order, replies matched to them in order."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.broken: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                self._resolve(reply)
        except hiredis.ProtocolError as exc:
            self._break(ConnectionError(f"not a Redis reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._break(ConnectionError(f"the connection to Redis was lost ({exc or 'closed'})"))

    def call(self, args: tuple[Arg, ...]) -> asyncio.Future[Any]:
        if self.broken is not None:
            raise self.broken
        if not self._outgoing:  # the first of this loop turn's commands: flush them after it
            self._loop.call_soon(self._flush)
        self._outgoing.append(encode(args))
        reply: asyncio.Future[Any] = self._loop.create_future()
        self._waiting.append(reply)
        return reply

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        if self._outgoing and self._transport is not None and self.broken is None:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _resolve(self, reply: Any) -> None:
        if not self._waiting:
            self._break(ConnectionError("Redis answered a command never sent"))
            return
        waiting = self._waiting.popleft()
        if waiting.done():  # its caller gave up (its deadline): dropped, in its place
            return
        if isinstance(reply, hiredis.ReplyError):
            waiting.set_exception(RespError(str(reply)))
        else:
            waiting.set_result(reply)

    def _break(self, error: Exception) -> None:
        if self.broken is None:
            self.broken = error
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done():
                waiting.set_exception(error)
        self.close()


class RespClient:
    """Calls to the Redis at ``url`` on one pipelined connection, made on first use."""

    def __init__(self, url: str, *, connect_timeout_s: float) -> None:
        self.address = Address.of(url)
        self._connect_timeout_s = connect_timeout_s
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._scripts: dict[str, str] = {}
        """A script's SHA1 by its text (EVALSHA first, EVAL when the server lost it)."""

    async def call(self, *args: Arg) -> Any:
        connection = await self._connected()
        try:
            return await connection.call(args)
        except ConnectionError:  # broken before it answered (a restart): once more, anew
            return await (await self._connected()).call(args)

    async def script(self, text: str, keys: list[str], args: list[Arg]) -> Any:
        """``EVALSHA``, or ``EVAL`` when the server does not know the script (restarted)."""
        sha = self._scripts.get(text)
        if sha is None:
            sha = self._scripts[text] = hashlib.sha1(text.encode()).hexdigest()
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.call("EVAL", text, len(keys), *keys, *args)

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.broken is None:
            return connection
        async with self._connecting:  # the first caller connects; the others use it
            if self._connection is None or self._connection.broken is not None:
                self._connection = await self._connect()
            return self._connection

    async def _connect(self) -> _Connection:
        address = self.address
        tls = None
        if address.tls:
            import ssl

            tls = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout_s):
            _, connection = await loop.create_connection(
                _Connection, address.host, address.port, ssl=tls
            )
            try:
                if address.password is not None:
                    user = (address.username,) if address.username else ()
                    await connection.call(("AUTH", *user, address.password))
                if address.db:
                    await connection.call(("SELECT", address.db))
            except BaseException:
                connection.close()
                raise
        return connection
