"""Process-level tuning shared by every function's start-up."""

from __future__ import annotations

import gc


def freeze_heap_for_workers() -> None:
    """Move everything loaded so far out of the garbage collector's reach.

    functions-framework builds the app in gunicorn's parent process, then forks the workers.
    A collection in a worker writes to the header of every tracked object, which copies the
    parent's pages into the worker (copy-on-write) until each worker holds a private copy of
    every imported module. Frozen objects are never scanned, so their pages stay shared.
    """
    gc.collect()
    gc.freeze()
