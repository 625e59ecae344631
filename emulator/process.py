"""Start a function as a functions-framework process and wait until it answers /health."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTION_SOURCES = {
    "gateway": "functions/gateway/main.py",
    "calculator": "functions/agents/calculator/main.py",
    "search": "functions/agents/search/main.py",
    "data_processor": "functions/agents/data_processor/main.py",
    "tavily": "functions/agents/tavily/main.py",
}
# functions-framework's gunicorn server on a 2-core machine: 2 workers use both cores. A thread
# serves one request at a time, and a real model call takes seconds, so workers x threads is
# how many calls an instance has in flight: 16 threads each make 32, at a small cost in peak
# throughput against an instant upstream (bench/RESULTS.md). The environment overrides both.
SERVER_DEFAULTS = {"WORKERS": "2", "THREADS": "16"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def functions_framework_bin() -> str:
    candidate = Path(sys.executable).parent / "functions-framework"
    return str(candidate) if candidate.exists() else "functions-framework"


@dataclass
class FunctionProcess:
    """A running function: its target, port and process."""

    target: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()


def start_function(
    target: str,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    ready_timeout_s: float = 30.0,
) -> FunctionProcess:
    """Start ``target`` with functions-framework's production server and wait for /health."""
    port = port or free_port()
    environ = {**SERVER_DEFAULTS, **os.environ, "PORT": str(port)}
    # Each function keeps its own metrics folder (shared/metrics.py), not this process's.
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environ.update(env or {})
    environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")])
    )
    log = log_path.open("wb") if log_path else None
    command = [
        functions_framework_bin(),
        "--source",
        str(REPO_ROOT / FUNCTION_SOURCES[target]),
        "--target",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=environ,
        stdout=log or subprocess.DEVNULL,
        stderr=log or subprocess.DEVNULL,
    )
    running = FunctionProcess(target, port, process, log)
    try:
        wait_healthy(running.url, process, ready_timeout_s)
    except Exception:
        running.stop()
        raise
    return running


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)  # polling a process we started; there is no event to wait on
    raise TimeoutError(f"{url} did not become healthy within {timeout_s:g} s")
