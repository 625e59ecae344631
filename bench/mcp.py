"""``make bench-mcp``: what an MCP ``tools/call`` costs on an agent beside its plain ``POST /``.

The calculator runs as production runs it (`python -m shared.serve`, one uvicorn worker:
``emulator.process.start_function``). The MCP request is the one the official ``mcp`` client
sends: it is recorded once from a real ``Client.call_tool`` (its headers and body), then
replayed, so the client's own work is not counted against the server. Measured in one run:

- one call at a time on one keep-alive connection, ``--calls`` of each, alternating plain and
  MCP in rounds (other work on the machine disturbs both alike): p50 and p99, and the latency
  MCP adds (MCP p50 minus plain p50; target <= 1 ms);
- ``--concurrent`` (1,000) MCP calls at once on the one instance, each its own connection:
  the wall time and how many failed (an HTTP error, a JSON-RPC error or a wrong value; target
  zero).

The first MCP request of the process loads the SDK (about 1.8 s, once): it is made before the
timing starts. Results replace the "MCP" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import date
from typing import Any

import httpx

from bench.results import write_between
from emulator.process import start_function

BEGIN, END = "<!-- mcp:begin -->", "<!-- mcp:end -->"
EXPRESSION = "15% of 80 + sqrt(16) * 2^3"
VALUE = 44


async def recorded_call(url: str) -> tuple[dict[str, str], bytes]:
    """The headers and body of the official client's ``tools/call``, as it sent them."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    seen: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> None:
        seen.append(request)

    async with (
        httpx2.AsyncClient(event_hooks={"request": [record]}, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        result = await client.call_tool("calculator", {"expression": EXPRESSION})
        assert result.structured_content["value"] == VALUE, result
    [call] = [r for r in seen if b'"tools/call"' in r.content]
    keep = ("accept", "content-type", "mcp-protocol-version", "mcp-method", "mcp-name")
    headers = {k: v for k, v in call.headers.items() if k.lower() in keep or k.startswith("mcp")}
    return headers, call.content


def timed(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = client.post(path, content=body, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or str(VALUE) not in response.text:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return elapsed * 1000


def one_at_a_time(
    url: str, mcp: tuple[dict[str, str], bytes], calls: int, rounds: int
) -> dict[str, list[float]]:
    plain = (json.dumps({"expression": EXPRESSION}).encode(), {"content-type": "application/json"})
    times: dict[str, list[float]] = {"plain": [], "mcp": []}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(50):  # warm: the connection, the worker's caches
            timed(client, "/", *plain)
            timed(client, "/mcp", mcp[1], mcp[0])
        for _ in range(rounds):
            for _ in range(calls // rounds):
                times["plain"].append(timed(client, "/", *plain))
            for _ in range(calls // rounds):
                times["mcp"].append(timed(client, "/mcp", mcp[1], mcp[0]))
    return times


async def concurrent(url: str, mcp: tuple[dict[str, str], bytes], count: int) -> tuple[float, int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one() -> bool:
            try:
                response = await client.post("/mcp", content=mcp[1], headers=mcp[0])
            except httpx.HTTPError:
                return False
            text = response.text
            return response.status_code == 200 and '"isError":false' in text and str(VALUE) in text

        started = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(count)))
        wall = time.perf_counter() - started
    errors = sum(not ok for ok in results)
    return wall, errors


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(times: dict[str, list[float]], wall: float, errors: int, args: Any) -> str:
    plain_p50, mcp_p50 = statistics.median(times["plain"]), statistics.median(times["mcp"])
    added = mcp_p50 - plain_p50
    rows = [
        f"| {name} | {statistics.median(t):.2f} | {percentile(t, 0.99):.2f} | {len(t)} |"
        for name, t in (("POST / (plain)", times["plain"]), ("POST /mcp tools/call", times["mcp"]))
    ]
    verdict_latency = "met" if added <= 1.0 else "not met"
    verdict_errors = "met" if errors == 0 else "not met"
    return "\n".join(
        [
            BEGIN,
            "## MCP on an agent (`make bench-mcp`)",
            "",
            f"Measured {date.today().isoformat()} on this machine, `python -m bench.mcp "
            f"--calls {args.calls} --concurrent {args.concurrent}`: the calculator as production "
            "runs it (`python -m shared.serve`, one worker); the MCP request is the one the "
            "official `mcp` client sends (recorded from `Client.call_tool`, then replayed), one "
            "keep-alive connection, plain and MCP alternating in rounds (ms).",
            "",
            "| request | p50 ms | p99 ms | calls |",
            "|---|---|---|---|",
            *rows,
            "",
            "| measure | figure | target | verdict |",
            "|---|---|---|---|",
            f"| latency MCP adds, p50 one at a time | {added:.3f} ms | <= 1 ms "
            f"| {verdict_latency} |",
            f"| {args.concurrent:,} MCP calls at once: errors | {errors} (all in {wall:.1f} s) "
            f"| 0 | {verdict_errors} |",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="of each kind, one at a time")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print; leave RESULTS.md")
    args = parser.parse_args(argv)
    process = start_function("calculator", env={"WORKERS": "1", "LOG_LEVEL": "WARNING"})
    try:
        mcp = asyncio.run(recorded_call(process.url))  # also loads the SDK in the worker
        times = one_at_a_time(process.url, mcp, args.calls, args.rounds)
        wall, errors = asyncio.run(concurrent(process.url, mcp, args.concurrent))
    finally:
        process.stop()
    section = report(times, wall, errors, args)
    print(section)
    if not args.no_write:
        write_between(section, BEGIN, END)


if __name__ == "__main__":
    main()
