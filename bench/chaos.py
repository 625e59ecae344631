"""``make bench-chaos``: issue 21's chaos proof, on real processes.

Three orchestrator instances (``python -m shared.serve``, one process each) share a real
``redis-server`` (``STORE_URL``); the real gateway answers with its offline ``local`` model and
the real calculator agent (``bench/chaos_agent``, which counts what it executes by
``Idempotency-Key``) does the arithmetic. ``--runs`` tasks are delivered as CloudEvents
(binary mode), ``--concurrency`` at a time; a delivery that fails (connection refused or cut,
a 5xx, a 409 while the run's owner is alive, no answer within ``--delivery-timeout``) is
delivered again, to another instance, after ``--backoff`` seconds, as an at-least-once platform
does. Meanwhile an instance is SIGKILLed every ``--kill-every`` seconds and started again on
its port. The runs' lease is short (``RUN_LEASE_S``) so that a dead owner's runs are taken over
within seconds.

What must hold (the exit status is 1 otherwise): every run completes; no run is lost (each
ends ``completed`` with the calculator's answer); each agent call executed exactly once (the
agent's counters: no key executed twice). Reported: runs, kills, deliveries, redeliveries,
calls received again (retries of calls in flight, answered from the agent's kept answer),
duplicate executions, p50/p99 completion time (first delivery to completed answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from emulator.network import free_port
from tests.fakes.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "bench" / "chaos_agent" / "main.py"
EXPECTED = 17 * 23 - 4


@dataclass
class Process:
    """A function served by ``python -m shared.serve`` on its own port, killable."""

    source: Path
    target: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "shared.serve", "--source", str(self.source)]
        command += ["--target", self.target, "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ, "WORKERS": "1", "LOG_LEVEL": "WARNING", **self.env}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True
            )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except OSError:
            return False

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.target} exited: see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.target} not healthy on {self.url}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class Stack:
    redis: RedisServer
    gateway: Process
    agent: Process
    orchestrators: list[Process]


@contextmanager
def stack(folder: Path, instances: int, lease_s: float, agent_delay_s: float) -> Iterator[Stack]:
    redis = RedisServer(_redis_binary())
    redis.start()
    gateway = Process(ROOT / "functions/gateway/main.py", "gateway", {}, folder / "gateway.log")
    agent_env = {"CHAOS_AGENT_DELAY_S": str(agent_delay_s)}
    agent = Process(AGENT, "counted", agent_env, folder / "agent.log")
    env = {
        "GATEWAY_URL": gateway.url,
        "CALCULATOR_URL": agent.url,
        "STORE_URL": redis.url,
        "RUN_LEASE_S": str(lease_s),
    }
    orchestrators = [
        Process(ROOT / "functions/orchestrator/main.py", "orchestrator", env, folder / f"o{n}.log")
        for n in range(instances)
    ]
    started = [gateway, agent, *orchestrators]
    try:
        for process in started:
            process.start()
        for process in started:
            process.wait_healthy()
        yield Stack(redis, gateway, agent, orchestrators)
    finally:
        for process in started:
            process.kill()
        redis.stop()


def _redis_binary() -> str:
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    return binary


@dataclass
class Tally:
    deliveries: int = 0
    redeliveries: int = 0
    kills: int = 0
    completed: dict[int, float] = field(default_factory=dict)
    """Run number: seconds from its first delivery to its completed answer."""
    wrong: dict[int, Any] = field(default_factory=dict)


async def deliver(
    session: aiohttp.ClientSession,
    chaos: Stack,
    n: int,
    tally: Tally,
    timeout_s: float,
    backoff_s: float,
    give_up_at: float,
) -> None:
    """Run ``n``'s event, delivered again (to the next instance) until it is answered."""
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": f"chaos-{n}",
        "ce-source": "/bench/chaos",
        "ce-type": "agentorch.task",
    }
    body = json.dumps({"task": "What is 17 * 23 - 4?", "agents": ["calculator"]})
    began = time.monotonic()
    target = n
    while time.monotonic() < give_up_at:
        instance = chaos.orchestrators[target % len(chaos.orchestrators)]
        target += 1
        tally.deliveries += 1
        try:
            async with session.post(
                instance.url + "/",
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as answer:
                result = await answer.json(content_type=None)
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            status, result = 0, None
        if status == 200 and isinstance(result, dict):
            if result.get("status") == "completed" and str(EXPECTED) in str(result.get("answer")):
                tally.completed[n] = time.monotonic() - began
            else:
                tally.wrong[n] = result
            return
        tally.redeliveries += 1
        await asyncio.sleep(backoff_s)


async def killer(chaos: Stack, every_s: float, tally: Tally, stop: asyncio.Event) -> None:
    """SIGKILL an instance every ``every_s``, then start it again on its port."""
    pick = random.Random(21)  # noqa: S311 - which instance dies, not a secret
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every_s)
            return
        except TimeoutError:
            pass
        victim = pick.choice(chaos.orchestrators)
        await asyncio.to_thread(victim.kill)
        tally.kills += 1
        victim.start()
        await asyncio.to_thread(victim.wait_healthy)


def executed_counts(agent: Process) -> tuple[dict[str, int], dict[str, int]]:
    with urllib.request.urlopen(agent.url + "/counts", timeout=5) as answer:  # noqa: S310
        counts = json.loads(answer.read())
    return counts["received"], counts["executed"]


async def chaos_run(chaos: Stack, args: argparse.Namespace) -> Tally:
    tally = Tally()
    stop = asyncio.Event()
    give_up_at = time.monotonic() + args.give_up_after
    limit = asyncio.Semaphore(args.concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(n: int) -> None:
            async with limit:
                await deliver(
                    session, chaos, n, tally, args.delivery_timeout, args.backoff, give_up_at
                )

        killing = asyncio.ensure_future(killer(chaos, args.kill_every, tally, stop))
        try:
            await asyncio.gather(*(one(n) for n in range(args.runs)))
        finally:
            stop.set()
            await killing
    return tally


def report(args: argparse.Namespace, tally: Tally, chaos: Stack) -> dict[str, Any]:
    received, executed = executed_counts(chaos.agent)
    keys = [k for k in executed if k]
    times = sorted(tally.completed.values())
    return {
        "runs": args.runs,
        "instances": len(chaos.orchestrators),
        "kills": tally.kills,
        "completed": len(tally.completed),
        "lost": args.runs - len(tally.completed) - len(tally.wrong),
        "wrong": len(tally.wrong),
        "deliveries": tally.deliveries,
        "redeliveries": tally.redeliveries,
        "agent_calls": len(keys),
        "calls_received_again": sum(n - 1 for k, n in received.items() if k and n > 1),
        "duplicate_executions": sum(n - 1 for k, n in executed.items() if n > 1),
        "calls_without_key": executed.get("", 0),
        "p50_s": round(statistics.median(times), 2) if times else None,
        "p99_s": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2) if times else None,
    }


def passed(figures: dict[str, Any]) -> bool:
    return bool(
        figures["completed"] == figures["runs"]
        and figures["duplicate_executions"] == 0
        and figures["calls_without_key"] == 0
        and figures["agent_calls"] >= figures["runs"]
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--agent-delay", type=float, default=0.5)
    parser.add_argument("--delivery-timeout", type=float, default=5.0)
    parser.add_argument("--backoff", type=float, default=0.5)
    parser.add_argument("--give-up-after", type=float, default=300.0)
    return parser.parse_args(argv)


def prove(args: argparse.Namespace) -> dict[str, Any]:
    """The proof's figures (``report``), on a stack started and stopped for it."""
    with (
        tempfile.TemporaryDirectory(prefix="chaos-") as folder,
        stack(Path(folder), args.instances, args.lease, args.agent_delay) as chaos,
    ):
        tally = asyncio.run(chaos_run(chaos, args))
        return report(args, tally, chaos)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    figures = prove(args)
    print(json.dumps(figures, indent=2))
    return 0 if passed(figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
