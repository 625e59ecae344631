"""A Node SDK for the tests that run one under Node: installed with npm, once, into a folder
of its own under .pytest_cache, with the test's check script (tests/gateway/ts/) beside it.

Without node or npm, or when npm cannot install the package, the test is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).parent / "ts"
CACHE_ROOT = Path(__file__).resolve().parents[2] / ".pytest_cache"


def node_sdk_folder(folder: str, package: str, script: str, scripts: Path = SCRIPTS) -> Path:
    """``.pytest_cache/<folder>`` with ``package@latest`` installed and ``script`` (from
    ``scripts``) copied in."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"node and npm are needed for {package}")
    cache = CACHE_ROOT / folder
    if not (cache / "node_modules" / package).is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text(f'{{"name": "{folder}-check", "private": true}}')
        done = subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", f"{package}@latest"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install {package}: {done.stderr[-300:]}")
    shutil.copy(scripts / script, cache / script)
    return cache


def run_check(folder: str, package: str, script: str, gateway_url: str) -> dict[str, Any]:
    """``node SCRIPT`` in the SDK's folder against the gateway at ``gateway_url`` (``GW``): the
    JSON object on its last line of output."""
    done = subprocess.run(
        ["node", script],
        cwd=node_sdk_folder(folder, package, script),
        env={**os.environ, "GW": gateway_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out
