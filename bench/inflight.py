"""``make bench-inflight``: what one gateway instance holds in flight when the model is slow.

A model call takes seconds, so the figure that matters is how many calls an instance keeps
open at once, not requests per second against an instant upstream. The fake upstream
(``bench/upstream.py``, asyncio on the standard library) answers after 1 s, or streams an event
every 0.5 s for 10 s. The gateway runs as production does (functions-framework, gunicorn,
uvicorn workers; WORKERS=2). Measured:

- wrk with 256 and 1,000 connections, 1 s upstream: requests/s against the ideal
  (connections / latency), p50, p99, errors; through the anthropic provider and through the
  Bedrock provider (the same fake speaks InvokeModel); LiteLLM's proxy beside it when its venv
  exists (``bench/.work/litellm``, made by ``make bench-gateway``);
- 1,000 concurrent ``stream: true`` requests, 20 events 0.5 s apart: every stream complete and
  in order, and the gateway's memory (PSS) at its peak during them.

Results replace the "In flight" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp

from bench.gateway import BODY, HEADERS, LITELLM, litellm_proxy, post_ok, start_gateway
from bench.results import write_between
from bench.tools import WORK, LoadResult, PeakMemory, run_wrk, stop, wait_until, write_wrk_script
from emulator.compose import REPO_ROOT
from emulator.process import free_port

BEGIN, END = "<!-- inflight:begin -->", "<!-- inflight:end -->"
EVENTS, INTERVAL = 20, 0.5


def upstream(port: int, delay: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--delay", str(delay)]
    command += ["--events", str(EVENTS), "--interval", str(INTERVAL)]
    return subprocess.Popen(command, cwd=REPO_ROOT)


def gateway(port: int, up: int, workers: int) -> subprocess.Popen[bytes]:
    config = WORK / "gateway-inflight.yaml"
    config.write_text(
        """
routes:
  bench: [{provider: anthropic, model: claude-bench, timeout_s: 60}]
  bench-bedrock: [{provider: bedrock, model: anthropic.claude-bench, timeout_s: 60}]
deadline_s: 120
"""
    )
    env = {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{up}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"http://127.0.0.1:{up}",
    }
    return start_gateway(config, port, workers, env)


@dataclass
class Streams:
    complete: int
    broken: int
    seconds: float
    peak_pss_mb: float


async def one_stream(session: aiohttp.ClientSession, url: str) -> bool:
    body = {**BODY, "stream": True}
    async with session.post(url, json=body, headers=HEADERS) as response:
        if response.status != 200:
            return False
        text = (await response.read()).decode()
    deltas = [f"[{n}]" for n in range(EVENTS)]
    positions = [text.find(delta) for delta in deltas]
    in_order = all(p >= 0 for p in positions) and positions == sorted(positions)
    return in_order and text.rstrip().endswith('{"type": "message_stop"}')


async def many_streams(url: str, count: int) -> tuple[int, int, float]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        results = await asyncio.gather(
            *(one_stream(session, url) for _ in range(count)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    complete = sum(1 for r in results if r is True)
    return complete, count - complete, elapsed


def measure_streams(process: subprocess.Popen[bytes], url: str, count: int) -> Streams:
    with PeakMemory(process.pid) as peak:
        complete, broken, seconds = asyncio.run(many_streams(url, count))
    return Streams(complete, broken, seconds, peak.peak[0])


def load(url: str, model: str, clients: int, seconds: int) -> LoadResult:
    script = write_wrk_script({**BODY, "model": model}, HEADERS)
    run_wrk(url, script, clients, 3, timeout_s=10)  # warm-up: connections and pools made
    return run_wrk(url, script, clients, seconds, timeout_s=10)


def row(name: str, clients: int, result: LoadResult) -> str:
    share = result.requests_per_s / clients  # the ideal is clients / 1 s
    return (
        f"| {name} | {clients:,} | {result.requests_per_s:,.0f} | {share:.2f}"
        f" | {result.p50_ms / 1000:.2f} | {result.p99_ms / 1000:.2f} | {result.errors} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # A closed loop on a 1 s upstream completes at most (d - 1) / d of the ideal in a d-second
    # window (each client's last call ends after it): 12 s capped it at 0.92, 30 s at 0.97.
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    up_port, gw_port = free_port(), free_port()
    fake = upstream(up_port, 1.0)
    rows: list[str] = []
    try:
        wait_until(lambda: post_ok(f"http://127.0.0.1:{up_port}/v1/messages", BODY), 10, "fake")
        for clients in (256, 1000):
            url = f"http://127.0.0.1:{up_port}/v1/messages"
            rows.append(
                row("fake upstream alone", clients, load(url, "bench", clients, args.seconds))
            )
        process = gateway(gw_port, up_port, args.workers)
        url = f"http://127.0.0.1:{gw_port}/v1/messages"
        try:
            wait_until(lambda: post_ok(url, BODY), 30, "gateway")
            for model, name in (
                ("bench", "gateway, anthropic"),
                ("bench-bedrock", "gateway, bedrock"),
            ):
                for clients in (256, 1000):
                    rows.append(row(name, clients, load(url, model, clients, args.seconds)))
            streams = measure_streams(process, url, args.streams)
        finally:
            stop(process, 20)
        if not args.skip_litellm and LITELLM.exists():
            port = free_port()
            proxy = litellm_proxy(port, up_port, up_port, 2)
            url = f"http://127.0.0.1:{port}/v1/messages"
            try:
                wait_until(lambda: post_ok(url, BODY), 180, "litellm")
                for clients in (256, 1000):
                    rows.append(
                        row(
                            "LiteLLM proxy 1.108.7",
                            clients,
                            load(url, "bench", clients, args.seconds),
                        )
                    )
            finally:
                stop(proxy, 20)
    finally:
        stop(fake, 20)
    write(rows, streams, args)


def write(rows: list[str], streams: Streams, args: argparse.Namespace) -> None:
    section = "\n".join(
        [
            BEGIN,
            "## Model gateway: calls in flight (`make bench-inflight`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} cores), "
            f"`python -m bench.inflight`. Fake upstream answering after 1 s; gateway with "
            f"WORKERS={args.workers} (uvicorn workers, httptools behind shared/server.py's "
            f"bounds); wrk, 2 threads, {args.seconds} s per run after a 3 s warm-up, 10 s "
            "request timeout. Ideal = clients / 1 s. A closed loop on a 1 s upstream completes "
            "at most (d - 1) / d of the ideal in a d-second run (each client's last call ends "
            "after it), so runs are 30 s long; the row for the fake upstream alone shows what "
            "the load tool itself reaches.",
            "",
            "| server | clients | req/s | of ideal | p50 s | p99 s | errors |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"**Streams**: {args.streams:,} concurrent `stream: true` requests, {EVENTS} events "
            f"{INTERVAL} s apart: {streams.complete:,} complete and in order, {streams.broken} "
            f"broken, all done in {streams.seconds:.1f} s; gateway memory at peak "
            f"{streams.peak_pss_mb:.0f} MB PSS (target <= 300 MB).",
            END,
        ]
    )
    write_between(section, BEGIN, END)
    print(section)
    print(json.dumps({"streams_complete": streams.complete}))


if __name__ == "__main__":
    main()
