"""The emulator's state folder (``.agentorch/``): who runs, where, and each service's log.

    .agentorch/state.json          the supervisor's PID, each service's URL, PID and state
    .agentorch/logs/<service>.log  everything the service printed
    .agentorch/requests/           ``restart-<service>`` files the supervisor picks up on SIGUSR1
    .agentorch/state.db            the store every function shares (``STORE_URL``: runs, sessions)

``state.json`` is written whole and renamed into place, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emulator.compose import REPO_ROOT

STATE_VARIABLE = "AGENTORCH_STATE_DIR"


@dataclass
class ServiceState:
    url: str
    pid: int | None = None
    state: str = "waiting"
    """waiting, starting, healthy, unhealthy, exited, restarting, stopped."""
    restarts: int = 0
    exit_code: int | None = None
    log: str = ""
    instance: str = ""
    """The random token the process was started with (``AGENTORCH_INSTANCE``): its ``/health``
    echoes it, which tells our process from another server on the same port."""


@dataclass
class StackState:
    supervisor_pid: int
    compose_file: str
    status: str = "starting"
    """starting, running, failed, stopping, stopped."""
    error: str | None = None
    started_s: float | None = None
    """Seconds from ``up`` to every service healthy."""
    services: dict[str, ServiceState] = field(default_factory=dict)


def state_dir(explicit: Path | str | None = None) -> Path:
    """``--state-dir``, else ``AGENTORCH_STATE_DIR``, else ``.agentorch/`` at the repository."""
    chosen = explicit or os.environ.get(STATE_VARIABLE)
    return Path(chosen) if chosen else REPO_ROOT / ".agentorch"


class StateFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def requests(self) -> Path:
        return self.root / "requests"

    @property
    def store_url(self) -> str:
        """The functions' ``STORE_URL`` unless one is set: SQLite in this folder, shared by
        every process of the stack (``shared.store``)."""
        return f"sqlite:///{self.root.resolve() / 'state.db'}"

    def log_file(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def prepare(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.requests.mkdir(exist_ok=True)

    def write(self, state: StackState) -> None:
        self.prepare()
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(state), indent=2), encoding="utf-8")
        temporary.replace(self.state_file)

    def read(self) -> StackState | None:
        try:
            raw: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        services = {k: ServiceState(**v) for k, v in raw.pop("services", {}).items()}
        return StackState(**raw, services=services)

    def clear(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def request_restart(self, service: str, supervisor_pid: int) -> None:
        self.prepare()
        (self.requests / f"restart-{service}").touch()
        os.kill(supervisor_pid, signal.SIGUSR1)

    def take_requests(self) -> list[str]:
        """Services whose restart was asked for, each request consumed once."""
        names = []
        for path in sorted(self.requests.glob("restart-*")):
            path.unlink(missing_ok=True)
            names.append(path.name.removeprefix("restart-"))
        return names


def group_alive(pgid: int) -> bool:
    """Whether anything of ours (``alive``) still runs in process group ``pgid``: after a
    reboot or a long while the number may be another program's group, never to be signalled."""
    proc = Path("/proc")
    if not (sys.platform.startswith("linux") and proc.is_dir()):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and alive(int(entry.name)):
            return True
    return False


def alive(pid: int | None) -> bool:
    """Whether ``pid`` runs and is one of ours (a Python or functions-framework process)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process took the number
    cmdline = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux") and cmdline.exists():
        try:
            text = cmdline.read_bytes()
            status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return status != "Z" and (b"python" in text or b"functions-framework" in text)
    return True
