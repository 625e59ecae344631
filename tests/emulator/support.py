"""What the emulator's tests share: compose files of probe functions, a deadline poller."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROBE = Path(__file__).resolve().parent / "functions" / "probe" / "main.py"


def probe_service(port: int = 0, **extra: Any) -> dict[str, Any]:
    """A compose service running the probe function (one light gunicorn worker)."""
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
