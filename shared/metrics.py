"""Prometheus metrics shared by every function: request counts and latency by route.

functions-framework serves through gunicorn, which forks several worker processes from the
one that built the app. Each worker counts in its own memory, so a scrape would see whichever
worker answered. prometheus_client's multiprocess mode fixes that: every process writes its
values to files in one folder and ``GET /metrics`` adds them up.

prometheus_client picks that mode when it is first imported, from ``PROMETHEUS_MULTIPROC_DIR``.
So nothing happens at import here: ``configure()`` — called at start-up, before gunicorn forks,
by ``shared.runtime.prepare()`` in each function's ``main.py`` — makes the folder (unless the
variable names one). prometheus_client itself is imported only when values are first written
to it (the first flush, a second after the first request) or a scrape renders them: its import
is a tenth of an agent's cold start (bench/RESULTS.md, "Cold start"), and counting is in memory
until then. The metric objects below are defined at import but made on first use, after
``configure()`` (which first use calls too), so a module that defines metrics may be imported in
any order.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import contextlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from shared import telemetry

if TYPE_CHECKING:
    import prometheus_client

__all__ = ["Counter", "Histogram", "HTTP_REQUESTS", "HTTP_LATENCY", "configure", "flush", "render"]

FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_lock = threading.RLock()
_folder: str | None = None


def configure(flush_interval_s: float | None = None) -> str:
    """Make metrics add up across this process and the workers it forks; idempotent.
    ``flush_interval_s``: how often buffered counts are written (``shared.runtime.prepare()``
    passes ``$METRICS_FLUSH_INTERVAL_S``); None keeps the one set before.

    Returns the multiprocess folder: ``$PROMETHEUS_MULTIPROC_DIR``, or a new temporary one
    that the process which made it removes at exit.
    """
    global _folder, _flush_interval_s
    if flush_interval_s is not None:
        _flush_interval_s = flush_interval_s
    folder = _folder
    if folder is not None and os.environ.get(FOLDER_VARIABLE) == folder:
        return folder
    with _lock:
        if _folder is None:
            _folder = _make_folder()  # prometheus_client, imported later, reads it on import
        # Put back if something (a test's environment reset) removed it: prometheus_client reads
        # the variable again each time a metric needs a new file.
        os.environ.setdefault(FOLDER_VARIABLE, _folder)
        return _folder


def _make_folder() -> str:
    folder = os.environ.get(FOLDER_VARIABLE)
    if folder:
        os.makedirs(folder, exist_ok=True)
        atexit.register(_leave, folder, None)
        return folder
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before shared.metrics.configure(), so its metrics "
            "would count per process; call configure() first (shared.runtime.prepare() does)"
        )
    folder = tempfile.mkdtemp(prefix="agentorch-metrics-")
    os.environ[FOLDER_VARIABLE] = folder
    atexit.register(_leave, folder, os.getpid())
    return folder


def _leave(folder: str, owner_pid: int | None) -> None:
    """At exit: the process that made the folder removes it; any other (a gunicorn worker
    leaves through sys.exit, which runs atexit too) writes what it has buffered."""
    if os.getpid() == owner_pid:
        shutil.rmtree(folder, ignore_errors=True)
        return
    with contextlib.suppress(OSError):  # the folder went first: nothing left to write to
        flush()


MetricT = TypeVar("MetricT", "prometheus_client.Counter", "prometheus_client.Histogram")
FLUSH_INTERVAL_S = 1.0
"""How often buffered counts reach the shared files unless ``$METRICS_FLUSH_INTERVAL_S`` says
otherwise (``shared.server.ServerSettings``, where a bad value stops start-up naming it)."""
_flush_interval_s = FLUSH_INTERVAL_S


class LazyMetric(Generic[MetricT]):
    """A prometheus_client metric defined now and made on first use, after ``configure()``."""

    kind: ClassVar[str]
    """The prometheus_client class it makes."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        otel: tuple[str, str, Mapping[str, str]] | None = None,
        **options: Any,
    ) -> None:
        """``otel``: the metric's OpenTelemetry name, unit and attribute for each label, when
        they differ from the Prometheus ones (e.g. the GenAI conventions' metrics); exported
        over OTLP only when ``OTEL_*`` asks (``shared.telemetry.mirror``)."""
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._arguments = (name, documentation, tuple(labelnames))
        self._otel = otel or (name, "", {})
        self._options = options
        self._metric: MetricT | None = None
        self._children: dict[tuple[str, ...], Any] = {}

    def mirror(self, labels: tuple[str, ...]) -> Callable[[float], None] | None:
        """What also records this series' values in OpenTelemetry; None when that is off."""
        name, unit, renamed = self._otel
        attributes = {
            renamed.get(label, label): value
            for label, value in zip(self.labelnames, labels, strict=True)
            if value
        }
        buckets = self._options.get("buckets")
        return telemetry.mirror(self.kind, name, self.documentation, unit, attributes, buckets)

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


class _Buffered:
    """One labelled series that adds up in memory and is written to prometheus_client's
    files at most once a second (``FLUSH_INTERVAL_S``), on a timer of the running event loop.

    A write to a multiprocess value takes a lock, checks the process id and writes to a
    memory-mapped file: a request counted and timed that way paid for six of them on the hot
    path. Buffered, it pays a few additions. A scrape flushes its own process first, so what
    another worker counted in the last second may be missing from it; a process leaving
    through ``sys.exit`` flushes at exit. The price: a worker stopped by SIGTERM loses what it
    counted in its last second (uvicorn ends a worker by re-raising the signal with the
    default handler, so no exit hook runs; tests/shared/test_hostile_edges.py pins it).
    Outside an event loop (a script, a thread) values go straight through."""

    __slots__ = ("_metric", "_labels", "_dirty", "_mirror")

    def __init__(self, metric: LazyMetric[Any], labels: tuple[str, ...]) -> None:
        self._metric = metric
        self._labels = labels
        self._dirty = False
        self._mirror = metric.mirror(labels)

    def _target(self) -> Any:
        metric = self._metric.metric()
        return metric.labels(*self._labels) if self._labels else metric  # none: the metric

    def _touched(self) -> None:
        """Called with ``_lock`` held, after a change."""
        if self._dirty:
            return
        self._dirty = True
        _pending.append(self)
        _schedule_flush()

    def _write(self) -> None:
        """Called with ``_lock`` held: move the buffered values into prometheus_client."""
        raise NotImplementedError


class _CounterSeries(_Buffered):
    __slots__ = ("_amount",)

    def __init__(self, metric: LazyMetric[Any], labels: tuple[str, ...]) -> None:
        super().__init__(metric, labels)
        self._amount = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        if self._mirror is not None:
            self._mirror(amount)
        with _lock:
            self._amount += amount
            self._touched()

    def _write(self) -> None:
        amount, self._amount = self._amount, 0.0
        if amount:
            self._target().inc(amount)


class _HistogramSeries(_Buffered):
    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(
        self, metric: LazyMetric[Any], labels: tuple[str, ...], bounds: Sequence[float]
    ) -> None:
        super().__init__(metric, labels)
        self._bounds = list(bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self._bounds, value)  # the first bound >= value, as Prometheus
        if self._mirror is not None:
            self._mirror(value)
        with _lock:
            self._counts[index] += 1
            self._sum += value
            self._touched()

    def _write(self) -> None:
        counts, total = self._counts, self._sum
        self._counts, self._sum = [0] * len(counts), 0.0
        target = self._target()
        buckets = getattr(target, "_buckets", None)
        if buckets is None or len(buckets) != len(counts):  # not the prometheus_client we know
            for index, count in enumerate(counts):
                value = self._bounds[index] if index < len(self._bounds) else total
                for _ in range(count):
                    target.observe(value)
            return
        # What Histogram.observe does per value (sum, then the value's bucket), once per flush.
        target._sum.inc(total)
        for bucket, count in zip(buckets, counts, strict=True):
            if count:
                bucket.inc(count)


_pending: list[_Buffered] = []
_flush_timer: asyncio.TimerHandle | None = None
_flush_loop: asyncio.AbstractEventLoop | None = None


def _schedule_flush() -> None:
    """Called with ``_lock`` held."""
    global _flush_timer, _flush_loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no event loop in this thread: write through now
        _write_pending()
        return
    if _flush_timer is not None and _flush_loop is loop:
        return
    if _flush_timer is not None:  # set on a loop that has gone (tests run one per test)
        _write_pending()
    _flush_timer, _flush_loop = loop.call_later(_flush_interval_s, flush), loop


def _write_pending() -> None:
    while _pending:
        series = _pending.pop()
        series._dirty = False
        series._write()


def flush() -> None:
    """Write every buffered value to prometheus_client's files now."""
    global _flush_timer
    with _lock:
        if _flush_timer is not None:
            _flush_timer.cancel()
            _flush_timer = None
        _write_pending()


class Counter(LazyMetric["prometheus_client.Counter"]):
    kind = "Counter"

    def labels(self, *labelvalues: str) -> _CounterSeries:
        """The series for these label values (``.inc()``), as ``prometheus_client``'s."""
        series = self._children.get(labelvalues)
        if series is None:
            series = self._children.setdefault(labelvalues, _CounterSeries(self, labelvalues))
        return series  # type: ignore[no-any-return]


class Histogram(LazyMetric["prometheus_client.Histogram"]):
    kind = "Histogram"

    def labels(self, *labelvalues: str) -> _HistogramSeries:
        """The series for these label values (``.observe()``), as ``prometheus_client``'s."""
        series = self._children.get(labelvalues)
        if series is None:
            buckets = self._options.get("buckets")
            if buckets is None:  # prometheus_client's defaults (every histogram here names its own)
                configure()  # before prometheus_client is imported
                from prometheus_client import Histogram as Made

                buckets = Made.DEFAULT_BUCKETS
            bounds = [float(b) for b in buckets if float(b) != float("inf")]
            made = _HistogramSeries(self, labelvalues, bounds)
            series = self._children.setdefault(labelvalues, made)
        return series  # type: ignore[no-any-return]


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
    flush()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
