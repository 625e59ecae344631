"""Work for a ``QueryPool`` in tests: module-level functions, so a query process can import them."""

from __future__ import annotations

import os
import time


def burn_cpu(seconds: float) -> int:
    """Spin without sleeping for ``seconds`` of wall time; the process's id when done."""
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        count += 1
    return os.getpid()


def hold(seconds: float) -> int:
    """Sit in the process for ``seconds`` (a query that is slow but cheap)."""
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    return os.getpid()
