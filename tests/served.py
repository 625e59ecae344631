"""An ASGI app (a function built by functions-framework) served on real HTTP in a thread.

uvicorn runs it on 127.0.0.1 on a free port with its own event loop, as production's uvicorn
workers do, so tests talk to it over real sockets with real clients (the anthropic SDK, httpx,
aiohttp). ``stop()`` ends the server and joins the thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn


class ServedApp:
    def __init__(
        self,
        app: Any,
        *,
        start_timeout_s: float = 10.0,
        on_stop: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """``on_stop`` runs in the server's loop before it stops (to close what the app opened
        there: its outbound connections)."""
        self.app = app
        self._on_stop = on_stop
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="error", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start serving")
            time.sleep(0.005)
        [socket] = self._server.servers[0].sockets
        self.port: int = socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._on_stop is not None:
            loop = self._server.servers[0].get_loop()
            asyncio.run_coroutine_threadsafe(self._on_stop(), loop).result(timeout=10)
        self._server.should_exit = True
        self._thread.join(timeout=10)


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
