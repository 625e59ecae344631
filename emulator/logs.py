"""Service output: copied line by line into the service's log file, and shown with its name.

    model-gateway    | {"level": "INFO", ...}

On a terminal each name has its own color, as ``docker compose up`` does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TextIO

_COLORS = ("36", "33", "32", "35", "34", "31", "96", "93", "92", "95")
FOLLOW_POLL_S = 0.2


class Prefixer:
    """Writes ``name | line`` to ``out``, one whole line at a time, from any thread."""

    def __init__(self, names: Iterable[str], out: TextIO, *, color: bool) -> None:
        names = list(names)
        self._width = max((len(n) for n in names), default=0)
        self._colors = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(names)}
        self._out = out
        self._color = color
        self._lock = threading.Lock()

    def prefix(self, name: str) -> str:
        label = f"{name:<{self._width}} |"
        if self._color:
            return f"\x1b[{self._colors.get(name, '0')}m{label}\x1b[0m"
        return label

    def line(self, name: str, text: str) -> None:
        with self._lock:
            self._out.write(f"{self.prefix(name)} {text.rstrip()}\n")
            self._out.flush()


def copy_output(
    stream: IO[bytes], log_path: Path, echo: Callable[[str], None] | None
) -> threading.Thread:
    """A thread that copies ``stream`` into ``log_path`` (appending) and to ``echo``, until EOF."""

    def pump() -> None:
        with stream, log_path.open("ab") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                if echo is not None:
                    echo(raw.decode("utf-8", "replace"))

    thread = threading.Thread(target=pump, name=f"output-{log_path.stem}", daemon=True)
    thread.start()
    return thread


def last_lines(path: Path, count: int = 20) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=count)]
    except OSError:
        return []


def show(logs: dict[str, Path], prefixer: Prefixer, *, follow: bool, tail: int | None) -> None:
    """Print each service's log, then (``follow``) what they add until interrupted."""
    offsets: dict[str, int] = {}
    for name, path in logs.items():
        lines = last_lines(path, tail) if tail else _all_lines(path)
        for line in lines:
            prefixer.line(name, line)
        offsets[name] = path.stat().st_size if path.exists() else 0
    while follow:
        for name, path in logs.items():
            offsets[name] = _print_new(name, path, offsets[name], prefixer)
        time.sleep(FOLLOW_POLL_S)  # tail -f: a file has no event to wait on, portably


def _all_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _print_new(name: str, path: Path, offset: int, prefixer: Prefixer) -> int:
    try:
        size = path.stat().st_size
    except OSError:
        return offset
    if size < offset:
        offset = 0  # the file was started again
    if size == offset:
        return offset
    with path.open("rb") as handle:
        handle.seek(offset)
        chunk = handle.read()
    complete = chunk.rfind(b"\n") + 1
    for line in chunk[:complete].decode("utf-8", "replace").splitlines():
        prefixer.line(name, line)
    return offset + complete
