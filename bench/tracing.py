"""``make bench-tracing``: what tracing costs the gateway's ``/v1/messages``, off beside on.

Two gateway processes, production's way (functions-framework, gunicorn, uvicorn workers,
WORKERS=2), the same config, in front of the same instant fake upstream (``bench/upstream.py``):
one with no ``OTEL_*`` variable (tracing off: the SDK is not even imported), one exporting every
span (``OTEL_EXPORTER_OTLP_ENDPOINT``: the SDK's batch processor and OTLP/HTTP exporter) to a
local receiver (the same ``bench/upstream.py``, which takes OTLP exports). Measured, each right
after the other, the best of ``--rounds`` alternating runs (other work shares the machine):

- one call at a time (wrk, 1 connection): p50 and p99; the added latency is on's p50 minus
  off's (target <= 0.3 ms);
- 50 clients at once: requests/s; on's share of off's (target >= 0.85).

Off beside today's figures: ``make bench-gateway``'s table. Results replace the "Tracing" section
of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import Any

from bench.gateway import BODY, HEADERS, post_ok, start_gateway
from bench.openai_chat import upstream
from bench.results import write_between
from bench.tools import WORK, LoadResult, run_wrk, stop, wait_until, write_wrk_script
from emulator.process import free_port

BEGIN, END = "<!-- tracing:begin -->", "<!-- tracing:end -->"
MODES = ("off", "on")


def gateway(
    port: int, up: int, workers: int, tracing: bool, **otel: str
) -> subprocess.Popen[bytes]:
    """``otel``: more ``OTEL_*`` variables for the traced one (a sampler, to see what spans
    cost without their export)."""
    config = WORK / f"gateway-tracing-{'on' if tracing else 'off'}.yaml"  # and its .log
    config.write_text("routes:\n  bench: [{provider: anthropic, model: claude-bench}]\n")
    env = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{up}"}
    if tracing:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{up}"
        env["OTEL_METRICS_EXPORTER"] = "none"  # the spans' cost: metrics have their own
        env.update(otel)
    untraced = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return start_gateway(config, port, workers, env, base=untraced)


def best_of(urls: dict[str, str], clients: int, rounds: int, seconds: int) -> dict[str, Any]:
    """Each mode's best run (lowest p50 one at a time, most req/s at 50), alternating."""
    script = write_wrk_script(BODY, HEADERS)
    best: dict[str, LoadResult] = {}
    for _ in range(rounds):
        for mode, url in urls.items():
            run_wrk(url, script, clients, 2)  # warm-up: connections, pools, the SDK loaded
            result = run_wrk(url, script, clients, seconds)
            if mode not in best or (
                result.p50_ms < best[mode].p50_ms
                if clients == 1
                else result.requests_per_s > best[mode].requests_per_s
            ):
                best[mode] = result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    up = free_port()
    fake = upstream(up, 0.0)
    ports = {mode: free_port() for mode in MODES}
    urls = {mode: f"http://127.0.0.1:{port}/v1/messages" for mode, port in ports.items()}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        wait_until(lambda: post_ok(f"http://127.0.0.1:{up}/v1/messages", BODY), 10, "upstream")
        for mode in MODES:
            processes.append(gateway(ports[mode], up, args.workers, mode == "on"))
        for mode, url in urls.items():
            wait_until(lambda url=url: post_ok(url, BODY), 30, f"gateway, tracing {mode}")
        latency = best_of(urls, 1, args.rounds, args.seconds)
        load = best_of(urls, 50, args.rounds, args.seconds)
    finally:
        for process in [*processes, fake]:
            stop(process, 20)
    args.load = os.getloadavg()[0]
    section = render(latency, load, args)
    print(section)
    if not args.no_write:
        write_between(section, BEGIN, END)


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def render(latency: dict[str, LoadResult], load: dict[str, LoadResult], args: Any) -> str:
    added = latency["on"].p50_ms - latency["off"].p50_ms
    share = load["on"].requests_per_s / load["off"].requests_per_s
    rows = [
        f"| {mode} | {latency[mode].p50_ms:.2f} | {latency[mode].p99_ms:.2f} | "
        f"{load[mode].requests_per_s:,.0f} | {load[mode].p50_ms:.2f} | "
        f"{latency[mode].errors + load[mode].errors} |"
        for mode in MODES
    ]
    return "\n".join(
        [
            BEGIN,
            "## Tracing off beside on: the gateway's /v1/messages (`make bench-tracing`)",
            "",
            "Measured on this machine (2 cores), `python -m bench.tracing`: two gateway "
            f"processes (WORKERS={args.workers}) on the same instant upstream "
            "(`bench/upstream.py`), one with no `OTEL_*` variable, one exporting every span "
            "over OTLP/HTTP (batch processor) to a local receiver; each figure the best of "
            f"{args.rounds} alternating {args.seconds} s runs (load average {args.load:.1f} "
            "from other work during this run).",
            "",
            "| tracing | p50 ms, c=1 | p99 ms, c=1 | req/s, c=50 | p50 ms, c=50 | errors |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "| measure | figure | target | verdict |",
            "|---|---|---|---|",
            f"| latency tracing adds, p50 one at a time | {added:.3f} ms | <= 0.3 ms | "
            f"{_verdict(added <= 0.3)} |",
            f"| throughput on / off, 50 clients | {share:.3f} | >= 0.85 | "
            f"{_verdict(share >= 0.85)} |",
            END,
        ]
    )


if __name__ == "__main__":
    main()
