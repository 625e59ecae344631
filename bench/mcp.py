"""``make bench-mcp``: what an MCP ``tools/call`` costs on an agent beside its plain ``POST /``.

The calculator runs as production runs it (`python -m shared.serve`, one uvicorn worker:
``emulator.process.start_function``). The MCP request is the one the official ``mcp`` client
sends: it is recorded once from a real ``Client.call_tool`` (its headers and body), then
replayed, so the client's own work is not counted against the server. Measured in one run:

- one call at a time on one keep-alive connection per instance, ``--calls`` of each kind, the
  kinds taking turns call by call (other work on the machine disturbs all alike): p50 and p99,
  and the latency MCP adds (MCP p50 minus plain p50; target <= 1 ms);
- with ``--before REF``, the same for the calculator as revision REF of this repository serves
  it (its tree from ``git archive``, run beside this one), in the same turns: a change's
  before and after in one run;
- the server's own CPU per call of each kind (its process's CPU clock around blocks of
  calls): what MCP costs the server, without the time it waits for the CPU (other work on
  a busy machine still slows each instruction it runs);
- ``--concurrent`` (1,000) MCP calls at once on the one instance, each its own connection:
  the wall time and how many failed (an HTTP error, a JSON-RPC error or a wrong value; target
  zero).

The first MCP request of the process loads the SDK (about 1.8 s, once): it is made before the
timing starts. Results replace the "MCP" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from bench.results import write_between
from emulator.compose import REPO_ROOT
from emulator.process import FunctionProcess, start_function

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
    urls: dict[str, str], mcp: tuple[dict[str, str], bytes], calls: int
) -> dict[str, list[float]]:
    """``calls`` of each kind: a plain ``POST /`` and an MCP ``tools/call`` on every instance
    (``urls``: this tree's, and ``--before``'s when given), one after the other in turn,
    which instance goes first rotating, so that whatever else loads the machine falls on
    every kind alike."""
    plain = (json.dumps({"expression": EXPRESSION}).encode(), {"content-type": "application/json"})
    kinds = [(f"{name} plain", name, "/", plain) for name in urls]
    kinds += [(f"{name} mcp", name, "/mcp", (mcp[1], mcp[0])) for name in urls]
    times: dict[str, list[float]] = {kind[0]: [] for kind in kinds}
    clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in urls.items()}
    try:
        for _ in range(50):  # warm: the connections, the workers' caches
            for _, name, path, (body, headers) in kinds:
                timed(clients[name], path, body, headers)
        for turn in range(calls):
            shift = turn % len(kinds)
            for kind, name, path, (body, headers) in kinds[shift:] + kinds[:shift]:
                times[kind].append(timed(clients[name], path, body, headers))
    finally:
        for client in clients.values():
            client.close()
    return times


def cpu_s(pid: int) -> float:
    """The CPU time (user and system) process ``pid`` has used (Linux: ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_call(
    urls: dict[str, str], pids: dict[str, int], mcp: tuple[dict[str, str], bytes], calls: int
) -> dict[str, float]:
    """The server's CPU per call (ms), by kind: ``calls`` of each in blocks of a tenth, the
    kinds in turn, each block timed by its server's CPU clock: the time it waits while other
    work has the CPU is not in it (a busy machine still slows each instruction)."""
    plain = (json.dumps({"expression": EXPRESSION}).encode(), {"content-type": "application/json"})
    kinds = [(f"{name} {kind}", name) for kind in ("plain", "mcp") for name in urls]
    used = dict.fromkeys((kind for kind, _ in kinds), 0.0)
    block = max(1, calls // 10)
    clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in urls.items()}
    try:
        for _ in range(10):
            for kind, name in kinds:
                path, (body, headers) = (
                    ("/mcp", (mcp[1], mcp[0])) if "mcp" in kind else ("/", plain)
                )
                before = cpu_s(pids[name])
                for _ in range(block):
                    timed(clients[name], path, body, headers)
                used[kind] += cpu_s(pids[name]) - before
    finally:
        for client in clients.values():
            client.close()
    return {kind: total * 1000 / (block * 10) for kind, total in used.items()}


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


def revision_tree(ref: str, into: Path) -> Path:
    """This repository's tree at ``ref`` (a commit, branch or tag), extracted into ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def report(
    times: dict[str, list[float]], cpu: dict[str, float], wall: float, errors: int, args: Any
) -> str:
    labels = {"this": "this tree", "before": f"before (`{args.before}`)"}
    requests = {"plain": "POST / (plain)", "mcp": "POST /mcp tools/call"}
    rows = [
        f"| {labels[kind.split()[0]]} | {requests[kind.split()[1]]} "
        f"| {statistics.median(t):.2f} | {percentile(t, 0.99):.2f} | {len(t)} |"
        for kind, t in times.items()
    ]
    added = {
        name: statistics.median(times[f"{name} mcp"]) - statistics.median(times[f"{name} plain"])
        for name in labels
        if f"{name} mcp" in times
    }
    measures = [
        f"| latency MCP adds, p50 one at a time, {labels[name]} | {value:.3f} ms | <= 1 ms "
        f"| {'met' if value <= 1.0 else 'not met'} |"
        for name, value in added.items()
    ]
    measures += [
        f"| server CPU MCP adds per call, {labels[name]} "
        f"| {cpu[f'{name} mcp'] - cpu[f'{name} plain']:.3f} ms "
        f"(plain {cpu[f'{name} plain']:.3f}, MCP {cpu[f'{name} mcp']:.3f}) | | |"
        for name in labels
        if f"{name} mcp" in cpu
    ]
    before = f" --before {args.before}" if args.before else ""
    return "\n".join(
        [
            BEGIN,
            "## MCP on an agent (`make bench-mcp`)",
            "",
            f"Measured {date.today().isoformat()} on this machine (shared with other work: "
            f"load average {args.load}), `python -m bench.mcp --calls {args.calls} "
            f"--concurrent {args.concurrent}{before}`: the calculator as production runs it "
            "(`python -m shared.serve`, one worker); the MCP request is the one the official "
            "`mcp` client sends (recorded from `Client.call_tool`, then replayed), one keep-alive "
            "connection per instance, every kind taking its turn call by call (ms).",
            "",
            "| instance | request | p50 ms | p99 ms | calls |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "| measure | figure | target | verdict |",
            "|---|---|---|---|",
            *measures,
            f"| {args.concurrent:,} MCP calls at once (this tree): errors | {errors} "
            f"(all in {wall:.1f} s) | 0 | {'met' if errors == 0 else 'not met'} |",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="of each kind, one at a time")
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument(
        "--before", metavar="REF", help="also measure the calculator as revision REF serves it"
    )
    parser.add_argument("--no-write", action="store_true", help="print; leave RESULTS.md")
    args = parser.parse_args(argv)
    env = {"WORKERS": "1", "LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        processes: dict[str, FunctionProcess] = {"this": start_function("calculator", env=env)}
        stack.callback(processes["this"].stop)
        if args.before:
            tree = revision_tree(
                args.before, Path(stack.enter_context(tempfile.TemporaryDirectory()))
            )
            processes["before"] = start_function("calculator", env=env, root=tree, cwd=tree)
            stack.callback(processes["before"].stop)
        urls = {name: process.url for name, process in processes.items()}
        mcp = asyncio.run(recorded_call(urls["this"]))
        for url in urls.values():  # loads the SDK in each worker, before the timing
            timed_call = httpx.post(f"{url}/mcp", content=mcp[1], headers=mcp[0], timeout=60)
            timed_call.raise_for_status()
        times = one_at_a_time(urls, mcp, args.calls)
        pids = {name: process.process.pid for name, process in processes.items()}
        cpu = cpu_per_call(urls, pids, mcp, args.calls)
        wall, errors = asyncio.run(concurrent(urls["this"], mcp, args.concurrent))
    args.load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    section = report(times, cpu, wall, errors, args)
    print(section)
    if not args.no_write:
        write_between(section, BEGIN, END)


if __name__ == "__main__":
    main()
