"""Renders ``make bench-gateway``'s section of bench/RESULTS.md: figures, ratios, targets."""

from __future__ import annotations

import os
import platform
import time

from bench.tools import LoadResult, Measured


def _row(name: str, runs: dict[int, LoadResult]) -> str:
    cells = [
        f"{runs[c].requests_per_s:,.0f} | {runs[c].p50_ms:.2f} | {runs[c].p99_ms:.2f}"
        for c in (1, 10, 50)
    ]
    errors = sum(r.errors for r in runs.values())
    return f"| {name} | " + " | ".join(cells) + f" | {errors} |"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(
    upstream: dict[int, LoadResult],
    ours: Measured,
    theirs: Measured | None,
    workers: int,
    seconds: int,
) -> str:
    """The gateway's section of bench/RESULTS.md, between its markers."""
    lines = [
        BEGIN,
        "## Model gateway, instant upstream (`make bench-gateway`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({platform.machine()}, "
        f"{_cores()} cores), {seconds} s per load run, `wrk` as the load tool, nginx as the fake "
        "upstream (a fixed Anthropic Message; 529 on a second port for failover). Our gateway "
        "runs as production does: functions-framework's ASGI path (gunicorn, uvicorn workers), "
        f"WORKERS={workers}. LiteLLM's proxy runs with 2 workers, retries off, cooldowns off, and "
        "the same upstream. Latencies in ms.",
        "",
        "| server | rps c=1 | p50 | p99 | rps c=10 | p50 | p99 | rps c=50 | p50 | p99 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _row("fake upstream alone", upstream),
        _row(ours.name, ours.load),
    ]
    if theirs:
        lines.append(_row(theirs.name, theirs.load))
    lines += ["", "| measure | ours | LiteLLM | target | verdict |", "|---|---|---|---|---|"]
    lines += _comparison(upstream, ours, theirs)
    lines += [
        "",
        "Added latency = gateway p50 (or p99) minus the upstream's own, one request at a time. "
        "Failover cost = p50 through a route whose primary answers 529 (no retries, circuit "
        "breaker kept closed so every request really hits the failing primary) minus p50 of "
        "the secondary alone. Memory is PSS summed over the server's processes (RSS in "
        "brackets: it counts pages shared by forked workers once per worker).",
        "",
        CHOICES,
        END,
    ]
    return "\n".join(lines)


BEGIN, END = "<!-- gateway:begin -->", "<!-- gateway:end -->"


CHOICES = """### What the gateway's figures rest on

- **Server**: functions-framework's ASGI path (`@functions_framework.aio.http`): gunicorn with
  uvicorn workers and uvloop. The HTTP parser is httptools (C), behind `shared/server.py`'s
  bounds: uvicorn's own httptools protocol buffers a request head without limit (a 200 MB
  header grew a worker to 300 MB), ours refuses a head over 64 KiB with a 431 and closes a
  connection whose head has not arrived in 10 s. h11, which we ran before for its bounds,
  cost most of the server's CPU per request. A worker holds every call in flight on one event
  loop, so WORKERS is for cores, not for concurrency.
- **Outbound**: both providers speak the wire through `shared/wire.py`, a lean keep-alive
  HTTP/1.1 client on httptools (connections pooled per host, at most 4,096 per worker, the
  request written in one piece). It replaced aiohttp's client, which after the edge's trimming
  was the largest cost of a request; the gateway imports neither aiohttp nor the SDK.
- **Hot path**: headers read once from the ASGI scope into a dict (a Starlette `Headers`
  scans and decodes the whole list on every lookup), the body read without a timer when the
  protocol says it arrived whole, parsed once, checked by hand (not a pydantic model) and
  re-encoded with the route's model id; the answer's bytes passed through unparsed. Metrics
  add up in memory and reach prometheus_client's multiprocess files once a second (six
  locked, memory-mapped writes a request were a tenth of the CPU).
- **Where the time goes** (py-spy, the gateway's app driven in-process against nginx, 50 at
  once): about 180 us of CPU per request for the gateway's whole path, of which a third is the
  kernel's socket writes to the upstream, a fifth Starlette and functions-framework's
  middlewares, and the gateway's own code (JSON in and out, routing, the edge) most of the
  rest; a bare functions-framework + aiohttp forwarder measured the same way costs 220 us.
  The remaining limit is the server stack's fixed cost per request (uvicorn, Starlette,
  functions-framework) on a machine where wrk and nginx share the same 2 cores.
- **Noise**: this is a shared 2-core VM and wrk, the fake upstream and the server share it;
  repeated runs of one configuration move throughput by 20 % or more. CPU per request is
  the steadier figure.
"""


def _comparison(
    upstream: dict[int, LoadResult], ours: Measured, theirs: Measured | None
) -> list[str]:
    def figures(m: Measured | None) -> dict[str, float]:
        if m is None:
            return {}
        assert m.failover is not None
        return {
            "rps50": m.load[50].requests_per_s,
            "added50": m.load[1].p50_ms - upstream[1].p50_ms,
            "added99": m.load[1].p99_ms - upstream[1].p99_ms,
            "cold": m.cold_start_s,
            "idle": m.memory_idle[0],
            "idle_rss": m.memory_idle[1],
            "load": m.memory_load[0],
            "load_rss": m.memory_load[1],
            "failover": m.failover.p50_ms - m.load[1].p50_ms,
            "failover_p50": m.failover.p50_ms,
            "cpu": m.cpu_us_per_request,
        }

    a, b = figures(ours), figures(theirs)

    def cell(f: dict[str, float], key: str, fmt: str) -> str:
        if not f:
            return "n/a"
        text = fmt.format(f[key])
        if key in ("idle", "load"):
            text += f" ({f[key + '_rss']:.0f} RSS)"
        return text

    ratio = f" ({a['rps50'] / b['rps50']:.1f}x LiteLLM)" if b else ""
    rows = [
        (
            "throughput at 50 clients, rps",
            "rps50",
            "{:,.0f}",
            ">= 3,000 and >= 30x LiteLLM",
            a["rps50"] >= 3000 and (not b or a["rps50"] >= 30 * b["rps50"]),
        ),
        ("added latency p50, ms", "added50", "{:.2f}", "<= 1 ms", a["added50"] <= 1),
        ("added latency p99, ms", "added99", "{:.2f}", "(reported)", True),
        ("cold start to first answer, s", "cold", "{:.2f}", "<= 1.5 s", a["cold"] <= 1.5),
        ("server CPU per request at c=50, us", "cpu", "{:,.0f}", "(reported)", True),
        ("memory idle, MB", "idle", "{:.0f}", "<= 150 MB", a["idle"] <= 150),
        ("memory under load (c=50), MB", "load", "{:.0f}", "(reported)", True),
        (
            "time to fail over (529, then answer) p50, ms",
            "failover_p50",
            "{:.2f}",
            "(reported)",
            True,
        ),
        ("failover cost p50, ms", "failover", "{:.2f}", "<= 2 ms", a["failover"] <= 2),
    ]
    out = []
    for label, key, fmt, target, ok in rows:
        name = label + (ratio if key == "rps50" else "")
        out.append(
            f"| {name} | {cell(a, key, fmt)} | {cell(b, key, fmt)} | {target} | {_verdict(ok)} |"
        )
    return out


def _cores() -> int:
    return os.cpu_count() or 1
