"""A real Redis for the tests: Debian's ``redis-server`` on a free loopback port, in memory
only (``--save '' --appendonly no``), never a system service; and ``SilentServer``, a store
that accepts connections and never answers (a hung Redis, a black-holed network).

Where ``redis-server`` is not installed the tests that need it skip, saying so; under
``CI=true`` they fail instead (``.ci/run`` installs it), so CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from emulator.network import free_port
from tests.waiting import wait_until

BINARY = "redis-server"


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the test (fails under CI) when there is none."""
    path = shutil.which(BINARY)
    if path is None:
        reason = f"{BINARY} is not installed (apt-get install -y redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class RedisServer:
    """``redis-server`` on a port of its own; ``restart()`` keeps the port (its data goes)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, 10, f"redis-server answering on port {self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self._process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started ``RedisServer``, stopped at the end (skips when none is installed)."""
    server = RedisServer(require_redis_server())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SilentServer:
    """Accepts every connection, reads what is sent, answers nothing."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for connection in self._held:
            connection.close()
        self._thread.join(5)
