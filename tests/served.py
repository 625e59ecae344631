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
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from tests.waiting import wait_until


class ServedApp:
    def __init__(
        self,
        app: Any,
        *,
        aclose: Callable[[], Awaitable[None]] | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        """``aclose``: awaited in the app's loop once the server stopped (clients it made)."""
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="error", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
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
        self._server.should_exit = True
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
