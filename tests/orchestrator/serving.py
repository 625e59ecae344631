"""Running the real thing for tests: the orchestrator's functions-framework app under uvicorn
in the test's own event loop, and other functions as functions-framework processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import functions_framework
import uvicorn

REPO_ROOT = Path(__file__).resolve().parents[2]
ORCHESTRATOR_SOURCE = str(REPO_ROOT / "functions/orchestrator/main.py")


@asynccontextmanager
async def serve_orchestrator() -> AsyncIterator[str]:
    """The orchestrator built from the current environment as production builds it, served
    on 127.0.0.1 (its URL is yielded). Its outbound client is closed in its own loop."""
    app = functions_framework.create_app("orchestrator", ORCHESTRATOR_SOURCE)
    service = sys.modules["main"].service  # the module functions-framework just loaded
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
    )
    serving = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.005)  # polling uvicorn's start flag; it has no event
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await service.aclose()
        server.should_exit = True
        await serving


@dataclass
class Process:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_function(source: str, target: str, env: Mapping[str, str] | None = None) -> Process:
    """``functions-framework --source <source> --target <target>`` on a free port (1 worker)."""
    port = free_port()
    environ = {**os.environ, "WORKERS": "1", "THREADS": "4", "LOG_LEVEL": "WARNING"}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environ.update(env or {})
    environ["PYTHONPATH"] = str(REPO_ROOT)
    binary = str(Path(sys.executable).parent / "functions-framework")
    command = [binary, "--source", str(REPO_ROOT / source), "--target", target]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = Path(tempfile.mkstemp(prefix=f"{target}-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environ, stdout=out, stderr=out)
    return Process(f"http://127.0.0.1:{port}", process, log)


def wait_healthy(processes: list[Process], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    for each in processes:
        while True:
            if each.process.poll() is not None:
                raise RuntimeError(
                    f"{each.url}: exited with {each.process.returncode}:\n{each.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{each.url}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{each.url} did not become healthy in {timeout_s:g} s")
            time.sleep(0.05)  # polling processes we started; there is no event to wait on
