"""Start a function as its container does (``python -m shared.serve``) and wait until it
answers /health.

Every function runs in its own process group, so that stopping it also stops any gunicorn
workers it forked (``WORKERS`` > 1): nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from emulator.compose import REPO_ROOT, load_project
from emulator.network import LOOPBACK, free_port
from shared.http import INSTANCE_HEADER

__all__ = [
    "FunctionProcess",
    "free_port",
    "function_environment",
    "serve_functions",
    "spawn",
    "start_function",
]

# functions-framework's server (gunicorn, uvicorn workers) on a 2-core machine: 2 workers use
# both cores. Each worker holds all its calls in flight on one event loop, so the count is for
# cores, not concurrency (bench/RESULTS.md). The environment overrides it.
SERVER_DEFAULTS = {"WORKERS": "2"}
STOP_TIMEOUT_S = 10.0


def function_environment(
    port: int, env: Mapping[str, str] | None = None, *, root: Path = REPO_ROOT
) -> dict[str, str]:
    """This process's environment, the server defaults under it, ``env`` and ``PORT`` over it."""
    environ = {**SERVER_DEFAULTS, **os.environ}
    # Each function keeps its own metrics folder (shared/metrics.py), not this process's.
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environ.update(env or {})
    environ["PORT"] = str(port)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), environ.get("PYTHONPATH")]))
    return environ


def spawn(
    source: Path,
    target: str,
    port: int,
    environ: Mapping[str, str],
    *,
    cwd: Path = REPO_ROOT,
    output: IO[bytes] | int | None = subprocess.DEVNULL,
    program: str | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m shared.serve --source S --target T`` on loopback (functions-framework's server
    without its Flask: shared/serve.py), in a process group of its own; ``program`` runs a
    functions-framework command instead (another installation's, such as a bundle's venv)."""
    # -P: imports come from PYTHONPATH (the project's root), not from ``cwd``, as they do for
    # functions-framework's command.
    command = [program] if program else [sys.executable, "-P", "-m", "shared.serve"]
    command += [
        "--source",
        str(source),
        "--target",
        target,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(environ),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_group(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process's group, then SIGKILL what is still there after ``timeout_s``."""
    signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
    signal_group(process.pid, signal.SIGKILL)  # forked workers that outlived their master
    process.wait()


def signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class FunctionProcess:
    """A running function: its target, port and process."""

    target: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        stop_group(self.process)
        if self.log is not None:
            self.log.close()


def start_function(
    target: str,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    ready_timeout_s: float = 30.0,
    cwd: Path = REPO_ROOT,
    root: Path = REPO_ROOT,
) -> FunctionProcess:
    """Start ``target`` (a function of ``docker-compose.yml``) in ``cwd`` and wait for its
    /health; ``root``: the project tree it runs from (another revision's, for a benchmark that
    sets two side by side)."""
    service = load_project().by_target(target)
    port = port or free_port()
    log = log_path.open("wb") if log_path else None
    process = spawn(
        root / service.source,
        target,
        port,
        function_environment(port, env, root=root),
        cwd=cwd,
        output=log or subprocess.DEVNULL,
    )
    running = FunctionProcess(target, port, process, log)
    try:
        wait_healthy(running.url, process, ready_timeout_s)
    except Exception:
        running.stop()
        raise
    return running


@dataclass(frozen=True)
class HealthAnswer:
    """What ``GET url`` answered: its status and the instance token it echoed (if any)."""

    status: int
    instance: str

    @property
    def healthy(self) -> bool:
        return 200 <= self.status < 300

    def from_instance(self, expected: str | None) -> bool:
        """Whether the process that answered is the one given ``expected`` (None: any)."""
        return expected is None or self.instance == expected


def health_answer(url: str, timeout_s: float = 1.0) -> HealthAnswer | None:
    """What ``GET url`` answers, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return HealthAnswer(int(response.status), response.headers.get(INSTANCE_HEADER, ""))
    except urllib.error.HTTPError as exc:
        return HealthAnswer(int(exc.code), exc.headers.get(INSTANCE_HEADER, ""))
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def health_status(url: str, timeout_s: float = 1.0) -> int | None:
    """The status ``GET url`` answers, or None when nothing answers."""
    answer = health_answer(url, timeout_s)
    return answer.status if answer is not None else None


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], timeout_s: float, path: str = "/health"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with code {process.returncode}")
        status = health_status(f"{url}{path}")
        if status is not None and 200 <= status < 300:
            return
        time.sleep(0.02)  # polling a process we started; there is no event to wait on
    raise TimeoutError(f"{url} did not become healthy within {timeout_s:g} s")


@contextlib.contextmanager
def serve_functions(targets: Mapping[str, str], env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Start each of ``targets`` (a name -> a function's target) with ``env``; yield each
    name's URL; stop them all after, even when one fails to start."""
    started: dict[str, FunctionProcess] = {}
    try:
        for name, target in targets.items():
            started[name] = start_function(target, env=env)
        yield {name: process.url for name, process in started.items()}
    finally:
        for process in started.values():
            process.stop()
