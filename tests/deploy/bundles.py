"""Each function's source bundle run as a platform runs it: its own virtual environment, made
from its ``requirements.txt`` alone, and ``functions-framework --target T --source main.py``
started inside the bundle folder, with no path to this repository's sources.

One virtual environment per distinct set of pins (functions with the same pins share one); uv
installs them from its cache, so a warm machine builds them in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from emulator.network import LOOPBACK, free_port
from emulator.package import Bundle
from emulator.process import spawn, stop_group, wait_healthy
from tools.requirements import PYTHON_VERSION

PHASES: list[tuple[str, float]] = []
"""(phase, seconds) of this run, printed at the end (conftest.py)."""

INSTALL_TIMEOUT_S = 300.0
READY_TIMEOUT_S = 60.0


@contextlib.contextmanager
def timed(phase: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    PHASES.append((phase, time.monotonic() - started))


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert found, "uv is not installed: make setup installs it into .venv"
    return found


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def pins_of(requirements: Path) -> str:
    """The pins alone (no comments), which decide whether two bundles can share a venv."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return "\n".join(sorted(line for line in lines if line))


def make_venv(requirements: Path, folder: Path) -> Path:
    """A fresh virtual environment with ``requirements`` installed, and nothing else."""
    _run([_uv(), "venv", "--quiet", "--python", PYTHON_VERSION, str(folder)])
    python = folder / "bin" / "python"
    _run([_uv(), "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)])
    return folder


def make_venvs(bundles: Mapping[str, Bundle], folder: Path) -> dict[str, Path]:
    """Each bundle's venv, by the bundle's name: one per distinct set of pins, built at once."""
    by_pins: dict[str, list[str]] = {}
    for name, bundle in bundles.items():
        by_pins.setdefault(pins_of(bundle.folder / "requirements.txt"), []).append(name)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            pins: pool.submit(
                make_venv,
                bundles[names[0]].folder / "requirements.txt",
                folder / hashlib.sha256(pins.encode()).hexdigest()[:12],
            )
            for pins, names in by_pins.items()
        }
        return {name: futures[pins].result() for pins, names in by_pins.items() for name in names}


def environment(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """What a platform gives the process: its PATH and HOME, a port, nothing from this shell
    (no PYTHONPATH, no keys)."""
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "VIRTUAL_ENV": str(venv),
        "WORKERS": "1",
        **extra,
    }


def import_origins(bundle: Path, venv: Path, home: Path) -> dict[str, str]:
    """Where the bundle's interpreter finds each top-level package, run from inside it as
    functions-framework runs: ``""`` for one it cannot find."""
    script = (
        "import importlib.util as u\n"
        "for name in ('shared', 'functions', 'emulator', 'tests', 'tools'):\n"
        "    spec = u.find_spec(name)\n"
        "    print(name, (spec.submodule_search_locations or [''])[0] if spec else '')\n"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        cwd=bundle,
        env=environment(venv, home),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict((line.split(" ", 1) + [""])[:2] for line in done.stdout.splitlines())


@dataclass
class Running:
    """A bundle's server: its URL and process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_group(self.process)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start(bundle: Bundle, target: str, venv: Path, home: Path, env: Mapping[str, str]) -> Running:
    """``functions-framework --target T --source main.py`` in the bundle folder, not yet ready."""
    port = int(env["PORT"])
    log = home / f"{bundle.name}.log"
    with log.open("wb") as output:
        process = spawn(
            Path("main.py"),
            target,
            port,
            environment(venv, home, **env),
            cwd=bundle.folder,
            output=output,
            program=str(venv / "bin" / "functions-framework"),
        )
    return Running(bundle.name, f"http://{LOOPBACK}:{port}", process, log)


def wait_ready(running: Running) -> None:
    try:
        wait_healthy(running.url, running.process, READY_TIMEOUT_S)
    except (RuntimeError, TimeoutError) as exc:
        raise AssertionError(f"{running.name}: {exc}\n{running.output()}") from exc


def ports(names: list[str]) -> dict[str, int]:
    return {name: free_port() for name in names}
