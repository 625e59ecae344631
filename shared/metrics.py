"""Prometheus metrics shared by every function: request counts and latency by route.

functions-framework serves through gunicorn, which forks several worker processes from the
one that built the app. Each worker counts in its own memory, so a scrape would see whichever
worker answered. prometheus_client's multiprocess mode fixes that: every process writes its
values to files in one folder and ``GET /metrics`` adds them up.

prometheus_client picks that mode when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``.
So nothing happens at import here: ``configure()`` — called by the app factories at start-up,
before gunicorn forks — makes the folder (unless the variable names one), then imports
prometheus_client. The metric objects below are defined at import but made on first use, after
``configure()`` (which first use calls too), so a module that defines metrics may be imported
in any order.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    import prometheus_client

__all__ = ["Counter", "Histogram", "HTTP_REQUESTS", "HTTP_LATENCY", "configure", "render"]

FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_lock = threading.RLock()
_folder: str | None = None


def configure() -> str:
    """Make metrics add up across this process and the workers it forks; idempotent.

    Returns the multiprocess folder: ``$PROMETHEUS_MULTIPROC_DIR``, or a new temporary one
    that the process which made it removes at exit.
    """
    global _folder
    folder = _folder
    if folder is not None and os.environ.get(FOLDER_VARIABLE) == folder:
        return folder
    with _lock:
        if _folder is None:
            _folder = _make_folder()
            import prometheus_client  # noqa: F401  (only now: it reads the folder on import)
        # Put back if something (a test's environment reset) removed it: prometheus_client reads
        # the variable again each time a metric needs a new file.
        os.environ.setdefault(FOLDER_VARIABLE, _folder)
        return _folder


def _make_folder() -> str:
    folder = os.environ.get(FOLDER_VARIABLE)
    if folder:
        os.makedirs(folder, exist_ok=True)
        return folder
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before shared.metrics.configure(), so its metrics "
            "would count per process; call configure() first (the app factories do)"
        )
    folder = tempfile.mkdtemp(prefix="agentorch-metrics-")
    os.environ[FOLDER_VARIABLE] = folder
    atexit.register(_remove, folder, os.getpid())
    return folder


def _remove(folder: str, owner_pid: int) -> None:
    # gunicorn workers leave through sys.exit and run atexit too: only the maker removes it.
    if os.getpid() == owner_pid:
        shutil.rmtree(folder, ignore_errors=True)


MetricT = TypeVar("MetricT", "prometheus_client.Counter", "prometheus_client.Histogram")


class LazyMetric(Generic[MetricT]):
    """A prometheus_client metric defined now and made on first use, after ``configure()``."""

    kind: ClassVar[str]
    """The prometheus_client class it makes."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (), **options: Any
    ) -> None:
        self.name = name
        self._arguments = (name, documentation, tuple(labelnames))
        self._options = options
        self._metric: MetricT | None = None

    def metric(self) -> MetricT:
        """The prometheus_client metric itself."""
        configure()
        if self._metric is None:
            with _lock:
                if self._metric is None:
                    import prometheus_client

                    made = getattr(prometheus_client, self.kind)(*self._arguments, **self._options)
                    self._metric = made
        return self._metric

    def labels(self, *labelvalues: str) -> MetricT:
        """The child for these label values, as ``prometheus_client``'s ``labels``."""
        return self.metric().labels(*labelvalues)


class Counter(LazyMetric["prometheus_client.Counter"]):
    kind = "Counter"


class Histogram(LazyMetric["prometheus_client.Histogram"]):
    kind = "Histogram"


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
    folder = configure()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
