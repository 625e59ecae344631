"""What the emulator's tests share: compose files of probe functions, the CLI in process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from emulator.cli import main

PROBE = Path(__file__).resolve().parent / "functions" / "probe" / "main.py"


def probe_service(port: int = 0, **extra: Any) -> dict[str, Any]:
    """A compose service running the probe function (one process: `python -m shared.serve`)."""
    service: dict[str, Any] = {
        "x-function": {"source": str(PROBE), "target": "probe", "port": port or 18000},
        "environment": {"WORKERS": "1", "THREADS": "2"},
        "healthcheck": {
            "test": [
                "CMD",
                "python",
                "-c",
                "import urllib.request; urllib.request.urlopen('http://localhost:8080/health')",
            ],
            "interval": "1s",
            "timeout": "1s",
            "retries": 3,
        },
    }
    environment = extra.pop("environment", {})
    service["environment"].update(environment)
    service.update(extra)
    return service


def write_compose(folder: Path, services: dict[str, Any], **top: Any) -> Path:
    path = folder / "docker-compose.yml"
    path.write_text(yaml.safe_dump({"services": services, **top}, sort_keys=False))
    return path


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def agentorch(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``agentorch ARGS`` run in this process, its output and exit code as a subprocess's.

    A command costs this process half a second less than a new interpreter; what it starts
    (``up -d``'s supervisor and the functions) are real processes all the same.
    ``tests/emulator/test_cli.py`` runs the installed command itself."""
    out, err = io.StringIO(), io.StringIO()
    with (
        _environment({"COLUMNS": "200", **(env or {})}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(list(args))
    return subprocess.CompletedProcess(["agentorch", *args], code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
