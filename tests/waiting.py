"""The one way a test waits for something it cannot be told about: poll with a deadline.

Where there is an event to wait on (``FakeServer.wait_for_requests``, an ``asyncio.Event``),
wait on it instead; a test never sleeps a fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.01


def wait_until(check: Callable[[], T], timeout_s: float = 10.0, what: str = "") -> T:
    """``check()``'s first truthy value, polled every 10 ms; an ``AssertionError`` naming
    ``what`` (or ``check``) when none came within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what or check}")
        time.sleep(POLL_S)
