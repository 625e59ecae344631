"""``make bench-openai``: what ``/v1/chat/completions`` and ``/v1/responses`` cost beside
``/v1/messages``, in one run.

The same gateway process (production's way: functions-framework, gunicorn, uvicorn workers,
WORKERS=2) serves the three endpoints over the same route to the fake upstream
(``bench/upstream.py``); the request bodies carry the same message (``BODY``, and for
Responses the same message as ``input``), so the only difference is the OpenAI translation in
and out. Measured, each endpoint right after the other:

- one call at a time (wrk, 1 connection) on an instant upstream: p50 and p99; the added
  latency is an OpenAI endpoint's p50 minus the messages p50 (target <= 0.3 ms);
- 1,000 calls in flight on a 1 s upstream (wrk, 1,000 connections, 30 s): requests/s, and
  each OpenAI endpoint's share of what ``/v1/messages`` reaches (target >= 0.9);

each the best of ``--rounds`` alternating runs per endpoint, so that the machine's other load
(other work shares its 2 cores) counts least;
- the translation alone, in process (``timeit``, best of five): a request translated in and
  its answer translated out, in microseconds.

``--endpoints`` measures a subset (``messages`` is always measured: it is the baseline).

Results replace the "OpenAI-compatible endpoint" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import timeit
from typing import Any

from bench.gateway import BODY, HEADERS, post_ok, start_gateway
from bench.results import write_between
from bench.tools import UPSTREAM_MESSAGE, WORK, LoadResult, run_wrk, stop, wait_until
from bench.tools import write_wrk_script as wrk_script
from emulator.compose import REPO_ROOT
from emulator.process import free_port
from functions.gateway.openai.chat import chat_request, completion
from functions.gateway.openai.responses_input import translate_request
from functions.gateway.openai.responses_output import response_object

BEGIN, END = "<!-- openai:begin -->", "<!-- openai:end -->"
BASELINE = "messages"
RESPONSES_BODY = {
    "model": BODY["model"],
    "max_output_tokens": BODY["max_tokens"],
    "input": BODY["messages"],
}
"""``BODY``'s message as a Responses request."""
ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    BASELINE: ("/v1/messages", BODY),
    "chat completions": ("/v1/chat/completions", BODY),
    "responses": ("/v1/responses", RESPONSES_BODY),
}
"""Each endpoint measured: its path and its request body (the model set per run)."""
ANTHROPIC_ONLY = frozenset({"anthropic"})


def upstream(port: int, delay: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--delay", str(delay)]
    return subprocess.Popen(command, cwd=REPO_ROOT)


def gateway(port: int, slow: int, instant: int, workers: int) -> subprocess.Popen[bytes]:
    config = WORK / "gateway-openai.yaml"
    config.write_text(
        f"""
routes:
  bench: [{{provider: anthropic, model: claude-bench, timeout_s: 60}}]
  bench-instant:
    - {{provider: anthropic, model: claude-bench, timeout_s: 60,
       base_url: "http://127.0.0.1:{instant}"}}
deadline_s: 120
"""
    )
    return start_gateway(config, port, workers, {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{slow}"})


def load(url: str, body: dict[str, Any], model: str, clients: int, seconds: int) -> LoadResult:
    script = wrk_script({**body, "model": model}, HEADERS)
    run_wrk(url, script, clients, 3, timeout_s=10)  # warm-up: connections and pools made
    return run_wrk(url, script, clients, seconds, timeout_s=10)


def best_of(
    base: str, names: list[str], model: str, clients: int, rounds: int, seconds: int
) -> dict[str, LoadResult]:
    """Each endpoint's best run (lowest p50 one at a time, most req/s in flight) over
    ``rounds`` alternating runs: the machine's other load counts least that way."""
    best: dict[str, LoadResult] = {}
    for _ in range(rounds):
        for name in names:
            path, body = ENDPOINTS[name]
            result = load(base + path, body, model, clients, seconds)
            if name not in best or (
                result.p50_ms < best[name].p50_ms
                if clients == 1
                else result.requests_per_s > best[name].requests_per_s
            ):
                best[name] = result
    return best


def translation_us() -> dict[str, tuple[float, float]]:
    """In process, per OpenAI endpoint: a request translated in, and an answer translated
    out (us per call)."""
    chat: dict[str, Any] = {**BODY, "model": "bench"}
    responses: dict[str, Any] = {**RESPONSES_BODY, "model": "bench"}
    chat_in = chat_request(chat, lambda model: ANTHROPIC_ONLY)
    responses_in = translate_request(responses, lambda model: ANTHROPIC_ONLY)
    message = json.loads(json.dumps(UPSTREAM_MESSAGE))

    def best(call: Any) -> float:
        return min(timeit.repeat(call, number=20_000, repeat=5)) / 20_000 * 1e6

    return {
        "chat completions": (
            best(lambda: chat_request(chat, lambda model: ANTHROPIC_ONLY)),
            best(lambda: completion(message, chat_in)),
        ),
        "responses": (
            best(lambda: translate_request(responses, lambda model: ANTHROPIC_ONLY)),
            best(lambda: response_object(message, responses_in, "resp_bench", 0)),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="per in-flight run")
    parser.add_argument("--latency-seconds", type=int, default=8, help="per one-at-a-time run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--endpoints",
        default="chat completions,responses",
        help="the OpenAI endpoints to measure beside messages (comma-separated)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = [BASELINE] + [n.strip() for n in args.endpoints.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENDPOINTS]
    if unknown:
        parser.error(f"unknown endpoints {unknown}; choose from {', '.join(ENDPOINTS)}")
    WORK.mkdir(parents=True, exist_ok=True)
    slow_port, instant_port, gw_port = free_port(), free_port(), free_port()
    fakes = [upstream(slow_port, 1.0), upstream(instant_port, 0.0)]
    base = f"http://127.0.0.1:{gw_port}"
    try:
        for port in (slow_port, instant_port):
            url = f"http://127.0.0.1:{port}/v1/messages"
            wait_until(lambda url=url: post_ok(url, BODY), 10, "fake upstream")
        process = gateway(gw_port, slow_port, instant_port, args.workers)
        try:
            for name in names:
                path, body = ENDPOINTS[name]
                wait_until(lambda u=base + path, b=body: post_ok(u, b), 30, "gateway " + name)
            latency = best_of(base, names, "bench-instant", 1, args.rounds, args.latency_seconds)
            inflight = best_of(base, names, "bench", 1000, args.rounds, args.seconds)
        finally:
            stop(process, 20)
    finally:
        for fake in fakes:
            stop(fake, 20)
    args.load = os.getloadavg()[0]
    section = render(names, latency, inflight, translation_us(), args)
    print(section)
    if not args.no_write:
        write_between(section, BEGIN, END)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(
    names: list[str],
    latency: dict[str, LoadResult],
    inflight: dict[str, LoadResult],
    translation: dict[str, tuple[float, float]],
    args: argparse.Namespace,
) -> str:
    rows = [
        f"| {name} | {latency[name].p50_ms:.2f} | {latency[name].p99_ms:.2f} "
        f"| {inflight[name].requests_per_s:,.0f} | {inflight[name].requests_per_s / 1000:.2f} "
        f"| {inflight[name].p50_ms / 1000:.2f} | {inflight[name].p99_ms / 1000:.2f} "
        f"| {latency[name].errors + inflight[name].errors} |"
        for name in names
    ]
    verdicts = []
    for name in names[1:]:
        added = latency[name].p50_ms - latency[BASELINE].p50_ms
        share = inflight[name].requests_per_s / inflight[BASELINE].requests_per_s
        into, out = translation[name]
        verdicts += [
            f"| {name}: latency the translation adds, p50 one at a time | {added:.3f} ms "
            f"| <= 0.3 ms | {_verdict(added <= 0.3)} |",
            f"| {name} / messages, 1,000 in flight on a 1 s upstream | {share:.3f} "
            f"| >= 0.9 | {_verdict(share >= 0.9)} |",
            f"| {name}: translation alone, in process: request in / answer out "
            f"| {into:.1f} / {out:.1f} us | | |",
        ]
    return "\n".join(
        [
            BEGIN,
            "## OpenAI-compatible endpoints beside /v1/messages (`make bench-openai`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} cores), "
            "`python -m bench.openai_chat`: one gateway process (WORKERS="
            f"{args.workers}) serving the endpoints over one route to `bench/upstream.py`, the "
            "same message in every body, each endpoint measured right after the other. One at "
            f"a time: wrk with 1 connection on an instant upstream, {args.latency_seconds} s "
            f"runs (ms). In flight: wrk with 1,000 connections on a 1 s upstream, {args.seconds} s "
            "after a 3 s warm-up (of ideal = req/s / 1,000). Each figure is the endpoint's best "
            f"of {args.rounds} alternating runs (lowest p50 one at a time, most req/s in flight): "
            "other work shares this machine's cores, and the best run is the one it disturbed "
            f"least (load average {args.load:.1f} at the end of this run).",
            "",
            "| endpoint | p50 ms, c=1 | p99 ms, c=1 | req/s, 1,000 in flight | of ideal "
            "| p50 s | p99 s | errors |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "| measure | figure | target | verdict |",
            "|---|---|---|---|",
            *verdicts,
            END,
        ]
    )


if __name__ == "__main__":
    main()
