"""``make bench-gateway``: our gateway against LiteLLM's proxy, same fake upstream, same load.

Both gateways sit in front of nginx answering a fixed Anthropic Message (and a 529 on a second
port, for failover). wrk drives each at 1, 10 and 50 concurrent clients. Results go to
bench/RESULTS.md. LiteLLM is measured only when its venv exists (``bench/.work/litellm``,
made by ``make bench-gateway``); ``--skip-litellm`` measures ours alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import gateway_report as report
from bench.results import write_between
from bench.tools import (
    WORK,
    Measured,
    PeakMemory,
    cpu_seconds,
    memory_mb,
    run_wrk,
    start_nginx,
    stop,
    wait_until,
    write_wrk_script,
)
from emulator.compose import REPO_ROOT
from emulator.process import SERVER_DEFAULTS, free_port
from shared.serve import functions_framework_program

BODY = {"model": "bench", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}
# Both servers check a client key: ours through GATEWAY_API_KEYS, LiteLLM as its master key.
CLIENT_KEY = "sk-bench-client-key"
HEADERS = {
    "content-type": "application/json",
    "x-api-key": CLIENT_KEY,
    "authorization": f"Bearer {CLIENT_KEY}",
    "anthropic-version": "2023-06-01",
}
LITELLM = WORK / "litellm" / "bin" / "litellm"


def post_ok(url: str, body: dict[str, object]) -> bool:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=HEADERS, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def our_gateway(port: int, ok: int, bad: int, workers: int) -> subprocess.Popen[bytes]:
    config = WORK / "gateway-bench.yaml"
    config.write_text(
        f"""
routes:
  bench:
    - {{provider: anthropic, model: claude-bench, timeout_s: 30}}
  failover:
    - provider: anthropic
      model: claude-bench
      base_url: "http://127.0.0.1:{bad}"
      max_attempts: 1
    - {{provider: anthropic, model: claude-bench, timeout_s: 30}}
circuit:
  failure_threshold: 1000000000   # keep hitting the failing primary: measure failover itself
"""
    )
    return start_gateway(config, port, workers, {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{ok}"})


def start_gateway(
    config: Path, port: int, workers: int, env: dict[str, str], base: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The gateway as ``make gateway`` serves it (functions-framework's command: gunicorn and
    ``workers`` uvicorn workers) on 127.0.0.1:``port``, with the routes of ``config``, the
    bench's client key, Anthropic's key ``bench``, and ``env`` over ``base`` (``os.environ`` by
    default); its output in a log beside the config (``.work/NAME.log``)."""
    environ = {
        **(os.environ if base is None else base),
        "PYTHONPATH": str(REPO_ROOT),
        "GATEWAY_CONFIG": str(config),
        "GATEWAY_API_KEYS": CLIENT_KEY,
        "ANTHROPIC_API_KEY": "bench",
        "WORKERS": str(workers),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    command = [functions_framework_program(), "--source", "functions/gateway/main.py"]
    command += ["--target", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    log = config.with_suffix(".log").open("wb")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=environ, stdout=log, stderr=log)


def litellm_proxy(port: int, ok: int, bad: int, workers: int) -> subprocess.Popen[bytes]:
    config = WORK / "litellm-bench.yaml"
    deployment = (
        "{{model: anthropic/claude-bench, api_key: bench, api_base: 'http://127.0.0.1:{}'}}"
    )
    config.write_text(
        f"""
model_list:
  - model_name: bench
    litellm_params: {deployment.format(ok)}
  - model_name: failover
    litellm_params: {deployment.format(bad)}
  - model_name: failover-secondary
    litellm_params: {deployment.format(ok)}
router_settings:
  num_retries: 0
  disable_cooldowns: true
  fallbacks: [{{"failover": ["failover-secondary"]}}]
general_settings:
  master_key: {CLIENT_KEY}
litellm_settings:
  num_retries: 0
  request_timeout: 30
  telemetry: false
"""
    )
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "true",
    }
    command = [
        str(LITELLM),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    log = (WORK / "litellm.log").open("wb")
    return subprocess.Popen(command, cwd=WORK, env=env, stdout=log, stderr=log)


def measure(
    name: str, process: subprocess.Popen[bytes], url: str, seconds: int, cold_timeout_s: float
) -> Measured:
    started = time.monotonic()
    result = Measured(name)
    try:
        wait_until(lambda: post_ok(f"{url}/v1/messages", BODY), cold_timeout_s, name)
        result.cold_start_s = time.monotonic() - started
        result.memory_idle = memory_mb(process.pid)
        bench = write_wrk_script(BODY, HEADERS)
        failover = write_wrk_script({**BODY, "model": "failover"}, HEADERS)
        for clients in (1, 10, 50):
            run_wrk(f"{url}/v1/messages", bench, clients, 2)  # warm-up
            cpu_before = cpu_seconds(process.pid)
            with PeakMemory(process.pid) as peak:
                result.load[clients] = run_wrk(f"{url}/v1/messages", bench, clients, seconds)
            if clients == 50:
                result.memory_load = peak.peak
                served = result.load[clients].requests_per_s * seconds
                used = cpu_seconds(process.pid) - cpu_before
                result.cpu_us_per_request = 1e6 * used / served if served else 0.0
        result.failover = run_wrk(f"{url}/v1/messages", failover, 1, seconds)
    finally:
        stop(process, 20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each load run")
    server = {**SERVER_DEFAULTS, **os.environ}
    parser.add_argument("--workers", type=int, default=int(server["WORKERS"]))
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    ok, bad = free_port(), free_port()
    nginx = start_nginx(ok, bad)
    try:
        upstream_url = f"http://127.0.0.1:{ok}"
        wait_until(lambda: post_ok(f"{upstream_url}/v1/messages", BODY), 10, "nginx")
        script = write_wrk_script(BODY, HEADERS)
        upstream = {
            c: run_wrk(upstream_url + "/v1/messages", script, c, args.seconds) for c in (1, 10, 50)
        }
        port = free_port()
        ours = measure(
            "agent-orchestrator gateway",
            our_gateway(port, ok, bad, args.workers),
            f"http://127.0.0.1:{port}",
            args.seconds,
            30,
        )
        theirs = None
        if not args.skip_litellm and LITELLM.exists():
            port = free_port()
            theirs = measure(
                "LiteLLM proxy",
                litellm_proxy(port, ok, bad, 2),
                f"http://127.0.0.1:{port}",
                args.seconds,
                180,
            )
        elif not args.skip_litellm:
            print(f"LiteLLM not found at {LITELLM}; measuring ours alone", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait()
    section = report.render(upstream, ours, theirs, args.workers, args.seconds)
    write_between(section, report.BEGIN, report.END, args.output)
    print(section)


if __name__ == "__main__":
    main()
