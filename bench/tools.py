"""Measuring tools for the benchmarks: wrk runs, process memory and CPU, the nginx fake
upstream, starting and stopping what is measured."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

WORK = Path(__file__).resolve().parent / ".work"

# The fake upstream's answer: a complete Anthropic Message, as a fast provider would send it.
UPSTREAM_MESSAGE = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-bench",
    "content": [{"type": "text", "text": "Hello from the fake upstream."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 8},
}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Measured:
    """One gateway's figures in ``make bench-gateway``, as bench/gateway_report.py renders them."""

    name: str
    cold_start_s: float = 0.0
    memory_idle: tuple[float, float] = (0.0, 0.0)
    memory_load: tuple[float, float] = (0.0, 0.0)
    load: dict[int, LoadResult] = field(default_factory=dict)
    failover: LoadResult | None = None
    cpu_us_per_request: float = 0.0
    """The server's CPU (every process) per request answered, in the c=50 run."""


def require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise SystemExit(f"{tool} is needed: apt-get install -y {package}")


def _nginx_string(value: object) -> str:
    return json.dumps(value).replace("\\", "\\\\").replace("'", "\\'")


def start_nginx(ok_port: int, overloaded_port: int) -> subprocess.Popen[bytes]:
    """nginx answering every request on ``ok_port`` with a Message and on ``overloaded_port``
    with 529: a fake upstream fast enough that it is not what gets measured."""
    require("nginx", "nginx-light")
    root = WORK / "nginx"
    (root / "logs").mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
error_log {root}/logs/error.log error;
pid {root}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_buffer_size 64k;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{ok_port};
    default_type application/json;
    location / {{ return 200 '{_nginx_string(UPSTREAM_MESSAGE)}'; }}
  }}
  server {{
    listen 127.0.0.1:{overloaded_port};
    default_type application/json;
    location / {{ return 529 '{_nginx_string(OVERLOADED)}'; }}
  }}
}}
"""
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process


def write_wrk_script(body: dict[str, object], headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script = WORK / f"post-{abs(hash(tuple(lines)))}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str, script: Path, connections: int, seconds: int, timeout_s: float = 2.0
) -> LoadResult:
    """wrk's figures; a request unanswered after ``timeout_s`` counts as an error."""
    require("wrk", "wrk")
    threads = 1 if connections < 4 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={timeout_s:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    # Error answers and socket errors both count: a fast error is no answer.
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in sock.groups()) if sock else 0
    return LoadResult(rps, p50, p99, errors)


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by a process and all its descendants."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(PSS, RSS) of a process and all its descendants, in MB. PSS divides pages shared by
    forked workers among them, so it is the memory the whole server really holds."""
    pss = rss = 0
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
        rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    return pss / 1024, rss / 1024


class PeakMemory:
    """Samples a process tree's memory in the background while a load runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            pss, rss = memory_mb(self.pid)
            self.peak = (max(self.peak[0], pss), max(self.peak[1], rss))


def wait_until(predicate: object, timeout_s: float, what: str) -> float:
    """Poll ``predicate`` until true; returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.005)
    raise TimeoutError(f"{what} not ready within {timeout_s:g} s")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """Terminate ``process``, killing it if it has not ended within ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``coroutine`` on uvloop when it is installed, as the servers run."""
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)
