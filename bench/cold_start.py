"""``make bench-cold``: every function's cold start, from process start to its first answers.

Each function in functions.yaml is started as the platforms start it: its production command
(``python -m shared.serve --source ... --target ...`` with one worker: uvicorn in one process,
shared/serve.py) through ``emulator.process.spawn``, the way ``agentorch up`` starts it. The
clock starts just before the process is created; the figures are when ``GET /health`` first
answers 200 and when a real request first answers (an agent's ``POST /``, the gateway's
``POST /v1/messages`` through its offline ``local`` model, the orchestrator's ``POST /`` task,
its gateway and agents already warm). Each is the median of ``--runs`` cold starts, alternated
between functions.

Two ways to run the same code:

- ``bytecode``: every ``.pyc`` in place (``python -m compileall`` over site-packages and the
  sources first), as an image or bundle built by the platform is (the Dockerfile compiles both);
- ``source``: no bytecode at all (an empty ``PYTHONPYCACHEPREFIX`` and
  ``PYTHONDONTWRITEBYTECODE=1``), so every module is compiled from its source at start.

``floor`` is the smallest function served so (bench/cold/floor.py): what any function pays
before its own code runs. ``--checkout NAME=DIR`` (repeatable) times other checkouts of this
repository in the same sitting, alternated with this one, for a before/after (one from before
shared/serve.py is started with ``functions-framework``); ``--functions-framework`` also times
this checkout under ``functions-framework --source ... --target ...`` (gunicorn, one uvicorn
worker), as Cloud Functions and Cloud Run source deploys start it.
Results replace the "Cold start" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import write_between
from emulator.network import LOOPBACK, free_port
from emulator.process import FunctionProcess, function_environment, spawn, stop_group
from shared.manifest import Function, load_manifest
from shared.serve import functions_framework_program

BEGIN, END = "<!-- cold:begin -->", "<!-- cold:end -->"
REPO = Path(__file__).resolve().parents[1]
FLOOR = Path(__file__).resolve().parent / "cold" / "floor.py"
DEADLINE_S = 30.0
POLL_S = 0.005
MODES = ("bytecode", "source")
GOALS_S = {"agent": 0.5, "gateway": 1.0, "orchestrator": 1.0}
QUIET = {"WORKERS": "1", "LOG_LEVEL": "WARNING"}
# No provider credentials: the gateway answers from its offline model, nothing leaves the host.
UNSET = ("ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")
TAVILY_KEY = "tvly-bench"


@dataclass(frozen=True)
class Probe:
    """The real request a function answers first: method, path, JSON body, and a check of the
    answer's JSON (True when it is the answer a working function gives)."""

    method: str
    path: str
    body: dict[str, Any] | None

    def check(self, status: int, answer: Any) -> bool:
        if status != 200 or not isinstance(answer, dict) or answer.get("error"):
            return False
        return answer.get("status", "completed") in {"completed", "ok"}


AGENT_BODIES: dict[str, dict[str, Any]] = {
    "calculator": {"expression": "17 * 23 - 4"},
    "search": {"query": "circuit breaker cooldown"},
    "data_processor": {
        "operation": "describe",
        "rows": [{"city": "Oslo", "people": 700}, {"city": "Bergen", "people": 290}],
    },
    "tavily": {"query": "cold start"},
}
GATEWAY_BODY = {
    "model": "local",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "What is 6*7?"}],
}
TASK = {"task": "What is 17*23?"}


def probe(function: Function) -> Probe:
    if function.kind == "gateway":
        return Probe("POST", "/v1/messages", GATEWAY_BODY)
    if function.kind == "orchestrator":
        return Probe("POST", "/", TASK)
    body = AGENT_BODIES.get(function.name)
    return Probe("POST", "/", body) if body is not None else Probe("GET", "/schema", None)


def request(port: int, probe: Probe, timeout_s: float = DEADLINE_S) -> tuple[int, Any]:
    """One request on a fresh connection: (status, the answer's JSON or None)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout_s)
    try:
        body = json.dumps(probe.body).encode() if probe.body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        connection.request(probe.method, probe.path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, None


HEALTH = Probe("GET", "/health", None)


def first_health(port: int, process: subprocess.Popen[bytes], started: float) -> float:
    """Seconds from ``started`` to the first 200 from /health, polling every 5 ms."""
    while time.perf_counter() - started < DEADLINE_S:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before answering /health")
        try:
            if request(port, HEALTH, timeout_s=5.0)[0] == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(POLL_S)
    raise TimeoutError(f"/health did not answer within {DEADLINE_S:.0f} s")


@dataclass(frozen=True)
class Start:
    health_s: float
    answer_s: float
    cpu_s: float
    """CPU time (user + system) of the function's processes at its first answer: steadier than
    the wall-clock figures on a shared machine."""


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by every process in group ``pgid`` (and children they reaped)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp; then utime, stime, cutime, cstime at 11..14
            total += sum(int(value) for value in fields[11:15])
    return total * TICK_S


@dataclass(frozen=True)
class Target:
    """What to start: a function's name, kind, source and target, and its request."""

    name: str
    kind: str
    source: Path
    target: str
    probe: Probe


def targets(root: Path) -> list[Target]:
    found = [
        Target(f.name, f.kind, root / f.main, f.target, probe(f))
        for f in load_manifest(root / "functions.yaml").functions
    ]
    return [*found, Target("floor", "floor", FLOOR, "floor", HEALTH)]


@dataclass(frozen=True)
class Checkout:
    """A checkout of this repository, and the command its functions are started with: ``None``
    for ``python -m shared.serve``, else a ``functions-framework`` program."""

    root: Path
    program: str | None = None


def cold_start(
    target: Target, checkout: Checkout, env: dict[str, str], *, cwd: Path | None = None
) -> Start:
    """Start ``target`` once, time /health and its first real answer, stop it."""
    root = checkout.root
    port = free_port()
    environ = function_environment(port, env, root=root)
    started = time.perf_counter()
    process = spawn(
        target.source, target.target, port, environ, cwd=cwd or root, program=checkout.program
    )
    try:
        health_s = first_health(port, process, started)
        status, answer = request(port, target.probe)
        answer_s = time.perf_counter() - started
        cpu_s = group_cpu_s(process.pid)
        if not target.probe.check(status, answer):
            raise RuntimeError(f"{target.name}: {target.probe.path} answered {status}: {answer}")
        return Start(health_s, answer_s, cpu_s)
    finally:
        stop_group(process)


def compile_all(root: Path) -> None:
    """Bytecode for site-packages and the sources, as the Dockerfile builds it."""
    for folder in (Path(sys.prefix) / "lib", root / "shared", root / "functions", FLOOR.parent):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j0", str(folder)],
            check=False,
            stdout=subprocess.DEVNULL,
        )


@contextmanager
def warm_stack(checkout: Checkout, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The gateway and every agent, started once (warm): the orchestrator's environment."""
    root = checkout.root
    manifest = load_manifest(root / "functions.yaml")
    wiring: dict[str, str] = {}
    with ExitStack() as stack:
        for function in manifest.functions:
            if function.kind == "orchestrator":
                continue
            port = free_port()
            process = spawn(
                root / function.main,
                function.target,
                port,
                function_environment(port, env, root=root),
                program=checkout.program,
            )
            running = FunctionProcess(function.target, port, process)
            stack.callback(running.stop)
            first_health(port, process, time.perf_counter())
            variable = "GATEWAY_URL" if function.kind == "gateway" else function.url_variable
            wiring[variable] = running.url
        yield wiring


@contextmanager
def fake_tavily() -> Iterator[dict[str, str]]:
    from tests.fakes.tavily_server import FakeTavily  # a dev-only fake, for the tavily agent

    with FakeTavily(api_key=TAVILY_KEY) as tavily:
        yield {"TAVILY_API_KEY": TAVILY_KEY, "TAVILY_BASE_URL": tavily.url}


def base_environment() -> dict[str, str]:
    for name in UNSET:
        os.environ.pop(name, None)
    return dict(QUIET)


def mode_environment(mode: str, empty_cache: Path) -> dict[str, str]:
    if mode == "source":
        return {"PYTHONPYCACHEPREFIX": str(empty_cache), "PYTHONDONTWRITEBYTECODE": "1"}
    return {}


Figures = dict[tuple[str, str, str], list[Start]]
"""(checkout, mode, function) -> its cold starts."""


def measure(checkouts: dict[str, Checkout], modes: list[str], runs: int, only: set[str]) -> Figures:
    figures: Figures = {}
    env = base_environment()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="cold-nopyc-") as empty:
        env.update(stack.enter_context(fake_tavily()))
        wiring = {
            name: stack.enter_context(warm_stack(checkout, env))
            for name, checkout in checkouts.items()
        }
        for checkout in checkouts.values():
            compile_all(checkout.root)
        for run in range(runs):
            for mode in modes:
                order = list(checkouts.items())
                if run % 2:
                    order.reverse()  # drift in the machine's load falls on both
                for name, checkout in order:
                    for target in targets(checkout.root):
                        if only and target.name not in only:
                            continue
                        environ = {**env, **wiring[name], **mode_environment(mode, Path(empty))}
                        start = cold_start(target, checkout, environ)
                        figures.setdefault((name, mode, target.name), []).append(start)
                        print(
                            f"run {run + 1}/{runs} {mode:8} {name:8} {target.name:15} "
                            f"health {start.health_s:5.2f} s  answer {start.answer_s:5.2f} s  "
                            f"CPU {start.cpu_s:5.2f} s",
                            flush=True,
                        )
    return figures


def median(starts: list[Start], field: str) -> float:
    return float(statistics.median(getattr(start, field) for start in starts))


def render(figures: Figures, checkouts: dict[str, Checkout], runs: int, command: str) -> str:
    names = list(checkouts)
    functions = list(dict.fromkeys(key[2] for key in figures))
    modes = list(dict.fromkeys(key[1] for key in figures))
    kinds = {t.name: t.kind for t in targets(REPO)}
    header = ["function", "goal"]
    for mode in modes:
        for name in names:
            label = f"{name}, " if len(names) > 1 else ""
            header.append(f"{label}{mode}: health / answer (best; CPU), s")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for function in functions:
        goal = GOALS_S.get(kinds.get(function, ""))
        row = [function, f"≤ {goal:.1f} s" if goal else "-"]
        for mode in modes:
            for name in names:
                starts = figures.get((name, mode, function), [])
                row.append(
                    f"{median(starts, 'health_s'):.2f} / **{median(starts, 'answer_s'):.2f}** "
                    f"({min(start.answer_s for start in starts):.2f}; "
                    f"{median(starts, 'cpu_s'):.2f})"
                    if starts
                    else "-"
                )
        lines.append("| " + " | ".join(row) + " |")
    ratios = ratio_lines(figures, names, modes, functions)
    load = os.getloadavg()
    return "\n".join(
        [
            BEGIN,
            "## Cold start: process start to first answer (`make bench-cold`)",
            "",
            f"`{command}`, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, load average at the "
            f"end {load[0]:.1f}. Each figure is the median of {runs} cold starts of the "
            "function's production command (`python -m shared.serve`: uvicorn in one process; "
            "`functions-framework`: its command, gunicorn and one uvicorn worker), "
            "from creating the process to the first 200 from `/health` and to the first answer "
            "to a real request (an agent's `POST /`, the gateway's `POST /v1/messages` on its "
            "offline `local` model, the orchestrator's `POST /` task with its gateway and "
            "agents warm); in brackets the fastest first answer and the CPU time (user and "
            "system) the function's processes had used by then, the steadiest figure on a "
            "shared machine. `bytecode`: every module's `.pyc` in place, as the Dockerfile and a "
            "platform build leave them; `source`: none (compiled at start). `floor`: the "
            "smallest function served so (bench/cold/floor.py).",
            "",
            *lines,
            "",
            *ratios,
            END,
        ]
    )


def ratio_lines(
    figures: Figures, names: list[str], modes: list[str], functions: list[str]
) -> list[str]:
    out: list[str] = []
    if "bytecode" in modes and "source" in modes:
        name = names[-1]
        parts = []
        for function in functions:
            with_pyc = figures.get((name, "bytecode", function))
            without = figures.get((name, "source", function))
            if with_pyc and without:
                parts.append(
                    f"{function} {median(without, 'answer_s') / median(with_pyc, 'answer_s'):.1f}x"
                )
        out.append(f"Without bytecode / with it ({name}), first answer: " + ", ".join(parts) + ".")
    if len(names) > 1:
        before, after = names[0], names[-1]
        parts = []
        for function in functions:
            b = figures.get((before, "bytecode", function))
            a = figures.get((after, "bytecode", function))
            if b and a:
                best = min(s.answer_s for s in b) / min(s.answer_s for s in a)
                cpu = median(b, "cpu_s") / median(a, "cpu_s")
                parts.append(f"{function} {cpu:.2f}x ({best:.2f}x)")
        out.append(
            f"\n{before} / {after} (bytecode), CPU to the first answer (and the fastest first "
            "answer): " + ", ".join(parts) + "."
        )
    return out


def parse_checkout(value: str) -> tuple[str, Checkout]:
    name, _, folder = value.partition("=")
    if not name or not folder or not (Path(folder) / "functions.yaml").is_file():
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected NAME=DIR, DIR a checkout of this repo"
        )
    root = Path(folder).resolve()
    served = (root / "shared" / "serve.py").is_file()  # else: from before it, functions-framework
    return name, Checkout(root, None if served else functions_framework_program())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts per function and mode")
    parser.add_argument("--modes", default=",".join(MODES), help="bytecode,source")
    parser.add_argument("--only", default="", help="these functions only (comma-separated)")
    parser.add_argument(
        "--checkout",
        action="append",
        type=parse_checkout,
        default=[],
        help="NAME=DIR: also time this checkout (e.g. a worktree of the base commit), first",
    )
    parser.add_argument(
        "--functions-framework",
        action="store_true",
        help="also time this checkout under functions-framework's command, first",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    checkouts = dict(args.checkout)
    if args.functions_framework:
        checkouts["functions-framework"] = Checkout(REPO, functions_framework_program())
    checkouts["this" if checkouts else "figure"] = Checkout(REPO)
    modes = [m for m in args.modes.split(",") if m]
    figures = measure(checkouts, modes, args.runs, {n for n in args.only.split(",") if n})
    command = "python -m bench.cold_start " + " ".join(sys.argv[1:])
    section = render(figures, checkouts, args.runs, command.strip())
    print(section)
    if not args.no_write:
        write_between(section, BEGIN, END)


if __name__ == "__main__":
    main()
