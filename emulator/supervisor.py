"""The emulated stack: start services in ``depends_on`` order, watch them, stop them all.

A service starts once every dependency has reached its condition (``service_started``,
``service_healthy``); independent services start together. A service that exits, or is not
healthy by its deadline, stops the start-up with its last log lines. Once up, a service that
dies is reported and restarted if its ``restart`` policy says so (with a growing delay).
Every state change is written to ``state.json`` for ``agentorch status``.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.compose import Project, Service
from emulator.errors import StartFailed
from emulator.logs import copy_output, last_lines
from emulator.network import Address, service_environment
from emulator.process import function_environment, health_answer, signal_group, spawn
from emulator.state import ServiceState, StackState, StateFolder
from shared.http import INSTANCE_VARIABLE
from shared.store import URL_VARIABLE as STORE_VARIABLE

HEALTH_POLL_S = 0.05
RESTART_DELAY_S = (0.5, 10.0)
"""First and longest delay before a policy restart; it doubles in between."""
Echo = Callable[[str, str], None]


@dataclass
class Running:
    service: Service
    address: Address
    state: ServiceState
    process: subprocess.Popen[bytes] | None = None
    output: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self,
        project: Project,
        addresses: Mapping[str, Address],
        folder: StateFolder,
        *,
        supervisor_pid: int,
        echo: Echo | None = None,
        start_timeout_s: float | None = None,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.project = project
        self.folder = folder
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._echo = echo
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._lock = threading.Condition()
        self._failure: StartFailed | None = None
        self._stopping = False
        self.order = project.start_order()
        self.running = {
            s.name: Running(s, addresses[s.name], ServiceState(addresses[s.name].url))
            for s in self.order
        }
        self.stack = StackState(
            supervisor_pid,
            str(project.path),
            services={n: r.state for n, r in self.running.items()},
        )

    # -- start-up ---------------------------------------------------------------------------

    def up(self) -> float:
        """Start every service; the seconds until all were healthy. Raises ``StartFailed``."""
        began = time.monotonic()
        self.folder.prepare()
        for name in self.running:
            self.folder.log_file(name).write_bytes(b"")
        self._save()
        threads = [
            threading.Thread(target=self._bring_up, args=(name,), name=f"up-{name}", daemon=True)
            for name in self.running
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self._stopping and self._failure is None:
            self._failure = StartFailed("the start-up was interrupted; every service is stopped")
        if self._failure is not None:
            self.stack.status, self.stack.error = "failed", str(self._failure)
            self.stop()
            self._save()
            raise self._failure
        self.stack.status, self.stack.started_s = "running", round(time.monotonic() - began, 3)
        self._save()
        return self.stack.started_s

    def _bring_up(self, name: str) -> None:
        service = self.running[name].service
        with self._lock:
            self._lock.wait_for(
                lambda: self._failure is not None or self._stopping or self._ready_for(service),
                timeout=None,
            )
            if self._failure is not None or self._stopping:
                return
        try:
            self._launch(name)
            self._wait_healthy(name)
        except StartFailed as exc:
            with self._lock:
                self._failure = self._failure or exc
                self._lock.notify_all()

    def _ready_for(self, service: Service) -> bool:
        for dependency in service.depends_on:
            state = self.running[dependency.service].state.state
            wanted = (
                ("healthy",)
                if dependency.condition == "service_healthy"
                else ("starting", "healthy")
            )
            if state not in wanted:
                return False
        return True

    def _launch(self, name: str) -> None:
        running = self.running[name]
        source = self.project.directory / running.service.source
        if not source.is_file():
            self._set(name, "exited")
            raise StartFailed(f"{name}: its source {running.service.source} does not exist")
        running.state.instance = secrets.token_hex(8)
        environ = function_environment(
            running.address.port,
            {
                **service_environment(running.service, self.stack_addresses()),
                INSTANCE_VARIABLE: running.state.instance,
            },
            root=self.project.directory,
        )
        if not environ.get(STORE_VARIABLE):  # runs and sessions outlive a restart, shared
            environ[STORE_VARIABLE] = self.folder.store_url
        process = spawn(
            source,
            running.service.target,
            running.address.port,
            environ,
            cwd=self.project.directory,
            output=subprocess.PIPE,
        )
        assert process.stdout is not None
        echo = self._echo
        running.output = copy_output(
            process.stdout,
            self.folder.log_file(name),
            (lambda text: echo(name, text)) if echo else None,
        )
        running.process = process
        running.state.pid, running.state.exit_code = process.pid, None
        running.state.log = str(self.folder.log_file(name))
        threading.Thread(target=self._watch_exit, args=(name, process), daemon=True).start()
        self._set(name, "starting")

    def _wait_healthy(self, name: str) -> None:
        running = self.running[name]
        check = running.service.healthcheck
        if check is None:
            self._set(name, "healthy")
            return
        timeout_s = self._start_timeout_s or check.deadline_s()
        deadline = time.monotonic() + timeout_s
        url = running.address.url + check.path
        assert running.process is not None
        while time.monotonic() < deadline:
            if self._stopping or self._failure is not None:
                return  # the start-up is being given up: another service failed
            if running.process.poll() is not None:
                self._set(name, "exited", exit_code=running.process.returncode)
                raise self._failed(name, f"exited with code {running.process.returncode}")
            answer = health_answer(url, min(check.timeout_s, 2.0))
            if answer is not None and not answer.from_instance(running.state.instance):
                # Another server holds the port (ours cannot bind it): its answers are not ours.
                self._set(name, "unhealthy")
                raise self._failed(
                    name,
                    f"is not what answers at {url}: another server holds port "
                    f"{running.address.port}; pass --port {name}=PORT or --any-port",
                )
            if answer is not None and answer.healthy:
                self._set(name, "healthy")
                return
            time.sleep(HEALTH_POLL_S)  # a process we started has no readiness event to wait on
        self._set(name, "unhealthy")
        raise self._failed(name, f"not healthy at {url} within {timeout_s:g} s")

    def _failed(self, name: str, what: str) -> StartFailed:
        output = self.running[name].output
        if output is not None:
            output.join(timeout=1.0)  # the last lines it printed are still on their way
        lines = last_lines(self.folder.log_file(name), 12)
        tail = "\n".join(f"  {name} | {line}" for line in lines) or "  (it printed nothing)"
        return StartFailed(f"{name} {what}; its last log lines:\n{tail}")

    # -- running ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """From a signal handler or another thread: give up a start-up, or end ``serve``."""
        self._stopping = True
        with self._lock:  # an RLock: safe even if this thread already holds it
            self._lock.notify_all()
        self.events.put(("stop", ""))

    def request_restart(self, name: str) -> None:
        self.events.put(("restart", name))

    def serve(self, reload_watch: Callable[[], Callable[[], None]] | None = None) -> None:
        """Handle events (exits, restarts, requests) until a ``stop`` event; then stop all."""
        stop_watching = reload_watch() if reload_watch else None
        try:
            while True:
                try:
                    kind, name = self.events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if kind == "stop":
                    break
                if kind == "exited":
                    self._on_exit(name)
                elif kind == "restart":
                    self.restart(name)
                elif kind == "requests":
                    for requested in self.folder.take_requests():
                        self.restart(requested)
        finally:
            if stop_watching:
                stop_watching()
            self.stop()

    def _watch_exit(self, name: str, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        if self.running[name].process is process:
            self.events.put(("exited", name))

    def _on_exit(self, name: str) -> None:
        running = self.running[name]
        if self._stopping or running.process is None or running.process.poll() is None:
            return
        code = running.process.returncode
        signal_group(running.process.pid, signal.SIGKILL)  # workers orphaned by their master
        self._set(name, "exited", exit_code=code)
        self._report(name, f"exited with code {code}")
        policy = running.service.restart
        if policy in ("always", "unless-stopped") or (policy == "on-failure" and code != 0):
            first, longest = RESTART_DELAY_S
            delay = min(first * 2**running.state.restarts, longest)
            self._report(name, f"restarting in {delay:g} s (restart: {policy})")
            timer = threading.Timer(delay, self.events.put, args=(("restart", name),))
            timer.daemon = True
            timer.start()

    def restart(self, name: str) -> None:
        """Stop the service (if it runs) and start it again; health is awaited in the background."""
        if self._stopping or name not in self.running:
            return
        running = self.running[name]
        process, running.process = running.process, None
        if process is not None and process.poll() is None:
            self._terminate([process])
        running.state.restarts += 1
        self._set(name, "restarting")
        try:
            self._launch(name)
        except StartFailed as exc:
            self._report(name, str(exc))
            return
        threading.Thread(target=self._health_after_restart, args=(name,), daemon=True).start()

    def _health_after_restart(self, name: str) -> None:
        try:
            self._wait_healthy(name)
        except StartFailed as exc:
            self._report(name, str(exc))

    def _report(self, name: str, message: str) -> None:
        line = f"[agentorch] {message}"
        with self.folder.log_file(name).open("a", encoding="utf-8") as log:
            log.write(line + "\n")
        if self._echo:
            self._echo(name, line)

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every service and whatever it forked (their process groups)."""
        self._stopping = True
        self.stack.status = "stopping"
        self._save()
        processes = [r.process for r in self.running.values() if r.process is not None]
        self._terminate(processes)
        for name, running in self.running.items():
            if running.output is not None:
                running.output.join(timeout=2.0)
            if running.state.state != "exited":
                self._set(name, "stopped", save=False)
        self.stack.status = "stopped" if self._failure is None else "failed"
        self._save()

    def _terminate(self, processes: list[subprocess.Popen[bytes]]) -> None:
        for process in processes:
            signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout_s
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            signal_group(process.pid, signal.SIGKILL)  # the group's stragglers (forked workers) too
            process.wait()

    # -- state ------------------------------------------------------------------------------

    def stack_addresses(self) -> dict[str, Address]:
        return {name: running.address for name, running in self.running.items()}

    def _set(
        self, name: str, state: str, *, exit_code: int | None = None, save: bool = True
    ) -> None:
        with self._lock:
            self.running[name].state.state = state
            if exit_code is not None:
                self.running[name].state.exit_code = exit_code
            self._lock.notify_all()
        if save:
            self._save()

    def _save(self) -> None:
        with self._lock:
            self.folder.write(self.stack)
