"""Run a command on a pseudo-terminal and talk to it as a person at a keyboard would."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# CSI and OSC sequences, and the lone escapes prompt_toolkit and rich write around their text.
ANSI = re.compile(r"\x1b(?:\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


class Terminal:
    """``command`` with a terminal of ``rows`` x ``columns`` as its stdin, stdout and stderr."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        rows: int = 40,
        columns: int = 120,
    ) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**env, "TERM": "xterm"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self._raw = b""
        self._closed = False

    @property
    def screen(self) -> str:
        """Everything written so far, escape sequences removed."""
        return ANSI.sub("", self._raw.decode("utf-8", "replace")).replace("\r", "")

    def expect(self, text: str, timeout_s: float) -> None:
        """Read until ``text`` has been written; fail with what was written after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while text not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} not written within {timeout_s} s:\n{self.screen}")

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    def wait(self, timeout_s: float) -> int:
        """The exit status, reading what is written meanwhile (a full terminal blocks a writer)."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(min(0.2, deadline - time.monotonic()))
        if self.process.poll() is None:
            self.close()
            raise AssertionError(f"still running after {timeout_s} s:\n{self.screen}")
        while self._read(0.1):
            pass
        return int(self.process.returncode)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if not self._closed:
            os.close(self._master)
            self._closed = True

    def _read(self, timeout_s: float) -> bool:
        """Whether to read on: something was read, or nothing yet while the command runs."""
        ready, _, _ = select.select([self._master], [], [], max(timeout_s, 0))
        if not ready:
            return self.process.poll() is None
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            return False
        self._raw += chunk
        return bool(chunk)
