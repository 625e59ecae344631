"""Prometheus metrics shared by every function: request counts and latency by route.

functions-framework serves through gunicorn, which forks several worker processes from the
one that built the app. Each worker counts in its own memory, so a scrape would see whichever
worker answered. prometheus_client's multiprocess mode fixes that: every process writes its
values to files in one folder and ``GET /metrics`` adds them up. The folder is made here,
before prometheus_client is first imported (it reads the setting then), unless
``PROMETHEUS_MULTIPROC_DIR`` names one already.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_DIR = tempfile.mkdtemp(prefix="agentorch-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_DIR
    # Only the process that made it removes it: forked workers leave through os._exit.
    atexit.register(shutil.rmtree, _OWN_DIR, ignore_errors=True)
MULTIPROC_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]

from prometheus_client import (  # noqa: E402  (the folder must be set before this import)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

__all__ = ["Counter", "Histogram", "HTTP_REQUESTS", "HTTP_LATENCY", "render"]

HTTP_REQUESTS = Counter(
    "agentorch_http_requests_total",
    "HTTP requests answered, by function, route and status.",
    ["function", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "agentorch_http_request_seconds",
    "Time to answer an HTTP request (to the first byte for streams).",
    ["function", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def render() -> tuple[bytes, str]:
    """Every process's metrics added up, in Prometheus text format, and its content type."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
