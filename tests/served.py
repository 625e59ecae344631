"""The one way to serve an app under test: ``ServedApp``, uvicorn on real HTTP in a thread.

uvicorn runs the app (a function built by functions-framework) on 127.0.0.1 on a free port
with its own event loop, as production's uvicorn workers do, so tests talk to it over real
sockets with real clients (the anthropic SDK, httpx, aiohttp). ``stop()`` ends the server,
awaits ``aclose`` (the app's own clients) in the app's loop, and joins the thread.

For the app's logic without sockets, a test uses functions-framework's app in process
(``TestClient``); for a function as production runs it (gunicorn, workers, signals),
``emulator.process.start_function``. tests/README.md says which to choose.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn

from tests.waiting import wait_until

STOP_POLL_S = 0.005
"""How often a stopping server looks whether its connections and tasks are done (uvicorn:
0.1 s, twice per stop, which cost the suite's servers ~0.2 s each, hundreds of times)."""


@functools.cache
def client_tls() -> ssl.SSLContext:
    """One TLS context for every test client. httpx and the SDK build a new one per client,
    loading the CA bundle each time: ~45 ms of CPU per client, hundreds of clients a run. The
    tests speak plain HTTP to 127.0.0.1; the context only stands for the clients' default."""
    return httpx.create_ssl_context()


class _Server(uvicorn.Server):
    """uvicorn's server, stopped as soon as it is asked: its main loop waits for ``request_stop``
    instead of ticking every 0.1 s, and its shutdown polls every ``STOP_POLL_S``. Otherwise as
    uvicorn's: stop accepting, ask each connection to finish its response, wait for them and
    their tasks (at most ``timeout_s``), then cancel what is left."""

    timeout_s = 10.0

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_stop(self) -> None:
        """Thread-safe: the server stops; a no-op before it runs or after it stopped."""
        self.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)

    async def main_loop(self) -> None:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await self.on_tick(0)  # the default headers (date, server), as uvicorn's first tick
        if not self.should_exit:
            await self._stopping.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.timeout_s
        while self.server_state.connections or self.server_state.tasks:
            if time.monotonic() > deadline:
                for task in self.server_state.tasks:
                    task.cancel()
                break
            await asyncio.sleep(STOP_POLL_S)
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:  # as uvicorn's: the app's lifespan ends (a no-op when off)
            await self.lifespan.shutdown()


class ServedApp:
    def __init__(
        self,
        app: Any,
        *,
        aclose: Callable[[], Awaitable[None]] | None = None,
        start_timeout_s: float = 10.0,
        lifespan: bool = False,
    ) -> None:
        """``aclose``: awaited in the app's loop once the server stopped (clients it made);
        ``lifespan``: run the app's ASGI lifespan (a third-party app that needs it, as the
        ``mcp`` SDK's server does; our functions never get one under functions-framework)."""
        self.app = app
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="error",
            lifespan="on" if lifespan else "off",
            access_log=False,
        )
        self._server = _Server(config)
        self._aclose = aclose
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(
            lambda: self._server.started or not self._thread.is_alive(),
            start_timeout_s,
            "the app to start serving",
        )
        if not self._server.started:
            raise RuntimeError("the app did not start serving")
        [listener] = self._server.servers[0].sockets
        self.port: int = listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.request_stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        finally:
            if self._aclose is not None:
                await self._aclose()


_REFUSING: list[socket.socket] = []


def refused_url() -> str:
    """A URL where a connection is refused at once, whatever else runs on the machine: a port
    this process has bound and never listens on, held until the tests end. For the addresses
    a test must not reach (the configs' defaults are the stack's ports, 8080-8085 and 8585,
    which another running stack may serve)."""
    if not _REFUSING:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        _REFUSING.append(sock)
    return f"http://127.0.0.1:{_REFUSING[0].getsockname()[1]}"
