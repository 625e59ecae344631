"""tools/hold_ports.py, which CI runs around the whole suite (issue 15, item 21): it answers
anything on the ports it holds with a plausible 200, logs each request as a leak, and ends on
SIGTERM or when the process that started it is gone. Tested on free ports, not the defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from emulator.network import free_port
from shared.manifest import load_manifest
from tests.waiting import wait_until
from tools.hold_ports import MANIFEST, manifest_ports

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "hold_ports.py"


def test_its_default_ports_are_the_manifests() -> None:
    # Read without a YAML parser (it runs before setup): it must agree with the real loader.
    assert manifest_ports(MANIFEST.read_text()) == [f.port for f in load_manifest().functions]


def test_it_reads_only_port_lines() -> None:
    text = (
        "# port: 1 (a comment)\nfunctions:\n  - name: a\n    port: 8090  # the host port\n"
        "  - port: 8091\n    name: b\n    environment:\n      EXPORT: 'port: 3'\n"
    )
    assert manifest_ports(text) == [8090, 8091]


@pytest.mark.processes
def test_it_answers_logs_and_stops_on_sigterm() -> None:
    ports = [free_port(), free_port()]
    holder = subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, ports)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().split() == ["holding", *map(str, ports)]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/schema", timeout=5) as reply:
            assert reply.status == 200 and json.loads(reply.read()) == {"status": "ok"}
        assert holder.stdout.readline().strip() == (
            f"hold_ports: request on 127.0.0.1:{ports[1]} GET /schema HTTP/1.1"
        )
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.processes
def test_it_ends_when_its_parent_is_gone() -> None:
    port = free_port()
    # A parent that starts the holder and exits at once: the holder is re-parented and must go.
    parent = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" "{SCRIPT}" --parent $$ {port} >/dev/null 2>&1 & echo $!'],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    pid = int(parent.stdout.strip())

    def gone() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    try:
        wait_until(gone, 10, "the holder ended with its parent")
    finally:
        if not gone():
            os.kill(pid, signal.SIGKILL)
