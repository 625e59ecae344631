"""Each query runs in a child process that the operating system bounds, from a small reused pool.

DuckDB's own limits leave gaps (``memory_limit`` is per connection and misses constants and
mid-size values; ``interrupt()`` is seen only between steps of execution), so a query process
gets hard ones from the kernel: ``RLIMIT_AS`` caps its address space (an allocation past it
fails, which DuckDB reports as out of memory), ``RLIMIT_CPU`` kills it after its CPU budget,
``RLIMIT_FSIZE=0`` forbids writing any file and ``RLIMIT_CORE=0`` any core dump. The parent
kills a process that has not answered by the wall-clock deadline and starts a fresh one for
the next query. Requests never share a process at the same time, and no query's memory is ever
in the server's own process.

Processes come from the ``forkserver`` start method: a clean single-threaded server forks them
(never the threaded web server), with the agent's modules imported once, so replacing a killed
process costs a fork, not an interpreter start. A process whose parent dies reads end-of-file
on its pipe and exits; ``close`` (also run at interpreter exit) kills the idle ones.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from shared.errors import BadRequest, ServiceError, UpstreamUnavailable

# Kept by the kernel's rlimits and the parent's kill even if a query ignores its interrupt.
_KILL_GRACE_S = 0.25
"""How long past its wall-clock budget the parent waits before killing: DuckDB's own interrupt,
when it is noticed, answers with a clearer message and keeps the process."""
_M_ARENA_MAX = -8  # glibc mallopt: one malloc arena instead of 64 MiB reserved per thread


@dataclass(frozen=True)
class Budget:
    """What one call may spend."""

    wall_s: float
    """Seconds until the parent kills the process."""
    cpu_s: float
    """CPU seconds until the kernel kills it (``RLIMIT_CPU``)."""


@dataclass(frozen=True)
class _Reply:
    ok: bool
    value: Any
    """The target's result, or the ``ServiceError`` it raised."""
    retire: bool = False
    """The process ran out of memory in Python and should not serve again."""


class _Worker:
    """One child process and the parent's end of its pipe."""

    def __init__(self, context: Any, target: Callable[..., Any], address_space: int) -> None:
        self.conn, child_end = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_serve,
            args=(child_end, target, address_space),
            name="data-processor-query",
            daemon=True,  # multiprocessing kills daemons at exit too
        )
        self.process.start()
        child_end.close()

    def call(self, args: tuple[Any, ...], budget: Budget) -> _Reply:
        """The reply, or ``_Lost`` when the process died or missed the deadline."""
        try:
            self.conn.send((args, budget.cpu_s))
        except OSError:  # it died while idle: the call never started
            raise _Lost(timed_out=False, exitcode=None, started=False) from None
        try:
            if not self.conn.poll(budget.wall_s + _KILL_GRACE_S):
                raise _Lost(timed_out=True, exitcode=None)
            reply: _Reply = self.conn.recv()
            return reply
        except (EOFError, OSError):
            self.process.join(timeout=1.0)
            raise _Lost(timed_out=False, exitcode=self.process.exitcode) from None

    def kill(self) -> None:
        with suppress(OSError, ValueError):
            self.process.kill()
            self.process.join(timeout=2.0)
        self.conn.close()


class _Lost(Exception):
    """A call whose process is gone (internal to this module)."""

    def __init__(self, *, timed_out: bool, exitcode: int | None, started: bool = True) -> None:
        super().__init__("query process lost")
        self.timed_out = timed_out
        self.exitcode = exitcode
        self.started = started


class QueryPool:
    """At most ``size`` query processes, each serving one call at a time; safe across threads.

    ``target(*args)`` runs in a process; it must be a module-level function (it is sent by
    name), and so must its arguments and result be picklable. A ``ServiceError`` it raises
    reaches the caller as it is; any other error is a 500."""

    def __init__(
        self,
        target: Callable[..., Any],
        *,
        size: int,
        address_space: int,
        memory_label: str,
        preload: list[str] | None = None,
    ) -> None:
        self.size = size
        self.memory_label = memory_label
        """The process memory limit as an error message should say it, e.g. ``1GB``."""
        self._target = target
        self._address_space = address_space
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(preload or [target.__module__])
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    def call(self, args: tuple[Any, ...], budget: Budget, wait_s: float) -> Any:
        """``target(*args)`` in a process within ``budget``, once one is free within ``wait_s``."""
        if not self._slots.acquire(timeout=wait_s):
            raise UpstreamUnavailable(
                f"all {self.size} query processes stayed busy for {wait_s:g} s; "
                "try again in a moment"
            )
        try:
            return self._call_in_worker(args, budget)
        finally:
            self._slots.release()

    def pids(self) -> list[int]:
        """The live query processes' ids (for tests and operators)."""
        with self._lock:
            workers = [*self._idle, *self._busy]
        return [w.process.pid for w in workers if w.process.pid is not None]

    def close(self) -> None:
        """Kill every process; a call still running loses its process when it returns."""
        with self._lock:
            self._closed = True
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.kill()

    def _call_in_worker(self, args: tuple[Any, ...], budget: Budget) -> Any:
        for attempt in (1, 2):
            worker = self._checkout()
            try:
                reply = worker.call(args, budget)
                break
            except _Lost as lost:
                self._discard(worker)
                if lost.started or attempt == 2:
                    raise self._lost_error(lost, budget) from None
            except BaseException:
                self._discard(worker)  # e.g. an argument that cannot be pickled
                raise
        if reply.retire:
            self._discard(worker)
        else:
            self._checkin(worker)
        if reply.ok:
            return reply.value
        raise reply.value

    def _checkout(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise UpstreamUnavailable("the data processor is shutting down")
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    self._busy.add(worker)
                    return worker
                worker.kill()
        worker = _Worker(self._context, self._target, self._address_space)
        with self._lock:
            self._busy.add(worker)
        return worker

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def _lost_error(self, lost: _Lost, budget: Budget) -> ServiceError:
        if lost.timed_out or lost.exitcode == -signal.SIGXCPU:
            return BadRequest(time_limit_message(budget.wall_s))
        # Killed by a signal other than the CPU limit: an allocation past RLIMIT_AS that the
        # code could not report (C++ aborts on a failed allocation in places), or a crash.
        return BadRequest(
            f"the query exceeded the memory limit of {self.memory_label} for one query and "
            f"its process was stopped (exit {lost.exitcode}); ask for less data"
        )


def time_limit_message(seconds: float) -> str:
    # 400, not 504: the query itself is too expensive, so the same request would time out
    # again; a 504 would invite retries (the gateway retries 504s) instead of a smaller query.
    return (
        f"the query exceeded the time limit of {seconds:g} s; "
        "ask for less work (filter first, avoid cross joins)"
    )


def _serve(conn: Connection, target: Callable[..., Any], address_space: int) -> None:
    """A query process: confine itself, then answer calls until the parent goes away."""
    _confine(address_space)
    while True:
        try:
            args, cpu_s = conn.recv()
        except (EOFError, OSError):
            return
        _limit_cpu(cpu_s)
        reply = _run(target, args)
        _limit_cpu(None)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # a result pickle refused (too deep, say)
            conn.send(_Reply(ok=False, value=ServiceError(f"the answer could not be sent: {exc}")))
        if reply.retire:
            return


def _run(target: Callable[..., Any], args: tuple[Any, ...]) -> _Reply:
    try:
        return _Reply(ok=True, value=target(*args))
    except ServiceError as exc:
        exc.__cause__ = exc.__context__ = None  # DuckDB's exceptions need not pickle
        exc.__traceback__ = None
        return _Reply(ok=False, value=exc)
    except MemoryError:
        error = BadRequest("the query exceeded its memory limit; ask for less data")
        return _Reply(ok=False, value=error, retire=True)
    except Exception as exc:
        return _Reply(ok=False, value=ServiceError(f"the query process failed: {exc!r}"[:500]))


def _confine(address_space: int) -> None:
    """Kernel limits and a neutral working directory for this process, before any query."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # No file may grow: standard output and error go to /dev/null (a device, not a file),
    # so that nothing printed can trip the limit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    # Relative paths, and the paths DuckDB derives from the working directory, name nothing.
    os.chdir("/")


def _limit_cpu(seconds: float | None) -> None:
    """``seconds`` more CPU from now (RLIMIT_CPU counts the process's whole life), or none."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if seconds is None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


_SHARED: dict[tuple[Any, ...], QueryPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(
    target: Callable[..., Any],
    *,
    size: int,
    address_space: int,
    memory_label: str,
    preload: list[str] | None = None,
) -> QueryPool:
    """One pool per server process and settings, however often the app is built (tests build
    it per client; gunicorn forks workers from a parent that built it: each gets its own).
    ``preload``: the modules its processes' server imports (default: ``target``'s)."""
    key = (os.getpid(), target, size, address_space, memory_label, tuple(preload or ()))
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None:
            pool = QueryPool(
                target,
                size=size,
                address_space=address_space,
                memory_label=memory_label,
                preload=preload,
            )
            _SHARED[key] = pool
    return pool


@atexit.register
def _close_shared() -> None:
    with _SHARED_LOCK:
        pools = [pool for key, pool in _SHARED.items() if key[0] == os.getpid()]
    for pool in pools:
        pool.close()
