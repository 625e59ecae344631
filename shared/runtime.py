"""Preparing the process a function is served from: each function's ``main.py`` calls it.

functions-framework imports a function's ``main.py`` in gunicorn's parent process, then forks
the uvicorn workers that serve it. Two things must be in place before that fork, and both change
the process, not an app:

- ``metrics.configure()`` picks the folder where every worker writes its metrics (setting
  ``$PROMETHEUS_MULTIPROC_DIR``), so that a scrape adds all workers up;
- ``server.install()`` sets the protocol and shutdown grace of every uvicorn worker
  (``UvicornWorker.CONFIG_KWARGS``): the request-head bounds and the wait for requests under way.

``prepare()`` does both, before a ``main.py`` builds its app; ``freeze_heap_for_workers()`` runs
after. A function that loads many modules (the gateway, the orchestrator) loads them and builds
its app under ``collector_paused()``: the collector's full passes over everything loaded so far
were a good part of their cold start, and found nothing to free.

Preparation is an explicit call, not something building an app does: an app is a value
that tests build by the hundred in one process, and constructing one should not change the
environment, a library's class attributes or the file system behind the reader's back. The one
line in ``main.py`` says where a function's process is set up; a function that skips it still
answers, but its workers would count metrics apart and parse heads without bounds, which
tests/test_prepare.py checks for every function in the manifest.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from shared import metrics

if TYPE_CHECKING:  # imported when called: importing this module stays cheap (collector_paused)
    from shared import server


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection inside the block (as it was before, after it).

    Loading a function allocates hundreds of thousands of objects that all live on, so every
    full collection while it loads scans them all and frees nothing: two or three such passes
    cost the gateway and the orchestrator 50-80 ms of CPU at start (bench/RESULTS.md, "Cold
    start"). Use it only around loading, never around serving."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def prepare(environ: Mapping[str, str] | None = None) -> server.ServerSettings:
    """Set this process up to serve a function: metrics shared by the workers it will fork, and
    the workers' bounded protocol, with the settings in ``environ`` (``os.environ`` by default:
    ``REQUEST_HEAD_*``, ``SHUTDOWN_GRACE_S``, ``METRICS_FLUSH_INTERVAL_S``; see
    ``server.ServerSettings``). Idempotent; a bad setting raises ``ConfigError`` naming it, so
    the function stops at start."""
    from shared import server

    settings = server.ServerSettings.load(environ)
    metrics.configure(settings.metrics_flush_interval_s)
    server.install(settings)
    return settings


def freeze_heap_for_workers() -> None:
    """Move everything loaded so far out of the garbage collector's reach.

    functions-framework builds the app in gunicorn's parent process, then forks the workers.
    A collection in a worker writes to the header of every tracked object, which copies the
    parent's pages into the worker (copy-on-write) until each worker holds a private copy of
    every imported module. Frozen objects are never scanned, so their pages stay shared.

    No collection first: one found nothing to free in the gateway or the orchestrator (loading
    a function leaves no cyclic garbage to speak of) and cost 40-50 ms of CPU at start, a pass
    over every object loaded (bench/RESULTS.md, "Cold start").
    """
    gc.freeze()
