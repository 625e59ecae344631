"""Starting and stopping what the orchestrator benchmark measures: the fakes and one
orchestrator instance, each a process of its own on a free port."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.tools import WORK, process_tree, stop, wait_until
from emulator.process import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status < 500)
    except OSError:
        return False


def start_fakes(delay_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "bench.orchestrator", "fakes", str(port), str(delay_s)]
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(f"{url}/calculator/schema"), 20, "fakes")
    return process, url


def bench_config(fakes_url: str) -> dict[str, Any]:
    return {
        "gateway": {"url": fakes_url, "timeout_s": 30},
        "agents": {"calculator": {"url": f"{fakes_url}/calculator"}},
        "agent_calls": {"max_parallel": 4},
        "log_level": "WARNING",
    }


def start_orchestrator(fakes_url: str, workers: int = 2) -> tuple[subprocess.Popen[bytes], str]:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "orchestrator.bench.yaml"
    path.write_text(yaml.safe_dump(bench_config(fakes_url)))
    port = free_port()
    env = {
        **os.environ,
        "ORCHESTRATOR_CONFIG": str(path),
        "PORT": str(port),
        "WORKERS": str(workers),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO_ROOT),
    }
    for variable in ("GATEWAY_URL", "CALCULATOR_URL", "K_SINK"):
        env.pop(variable, None)
    binary = Path(sys.executable).parent / "functions-framework"
    command = [
        str(binary),
        "--source",
        str(REPO_ROOT / "functions/orchestrator/main.py"),
        "--target",
        "orchestrator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(f"{url}/health"), 30, "orchestrator")
    # /health answers once one worker is up; the others must be too before anything is measured.
    wait_until(lambda: len(process_tree(process.pid)) > workers, 30, "orchestrator's workers")
    return process, url


def cold_start_s(fakes_url: str) -> float:
    began = time.monotonic()
    process, _ = start_orchestrator(fakes_url)
    elapsed = time.monotonic() - began
    stop(process)
    return elapsed


def import_seconds(module: str, runs: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)
