"""``python -m shared.serve``: functions-framework's command line and environment, one process
for one worker (the SIGTERM grace at work: tests/orchestrator/test_process.py, both ways)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from emulator.compose import REPO_ROOT
from emulator.network import LOOPBACK
from emulator.process import function_environment
from shared import serve

SOURCE = "tests/shared/functions/basic/main.py"


def test_the_environment_gives_what_the_flags_do_not() -> None:
    environ = {
        "FUNCTION_TARGET": "echo",
        "FUNCTION_SOURCE": "f/main.py",
        "HOST": "::1",
        "PORT": "9",
    }
    args = serve.parse([], environ)
    assert (args.target, args.source, args.host, args.port) == ("echo", "f/main.py", "::1", 9)
    args = serve.parse(["--target", "other", "--port", "10"], environ)
    assert (args.target, args.port) == ("other", 10)


def test_the_defaults_are_functions_frameworks() -> None:
    args = serve.parse(["--target", "t"], {"PORT": ""})
    assert (args.source, args.host, args.port) == ("main.py", "0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("argv", "environ", "said"),
    [
        ([], {}, "--target"),
        (["--target", "t"], {"PORT": "eighty"}, "PORT='eighty'"),
    ],
)
def test_what_cannot_start_is_named(
    argv: list[str], environ: dict[str, str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        serve.parse(argv, environ)
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(("raw", "count"), [(None, 1), ("", 1), (" 1 ", 1), ("4", 4)])
def test_workers(raw: str | None, count: int) -> None:
    assert serve.workers({} if raw is None else {"WORKERS": raw}) == count


@pytest.mark.parametrize("raw", ["0", "-2", "two"])
def test_workers_that_cannot_serve_are_named(raw: str) -> None:
    with pytest.raises(SystemExit, match=f"WORKERS={raw!r}"):
        serve.workers({"WORKERS": raw})


@pytest.mark.processes
def test_a_port_already_taken_stops_it_at_once_saying_so() -> None:
    # gunicorn retried a taken port for 5 s before giving up; one process says so and stops.
    with socket.socket() as held:
        held.bind((LOOPBACK, 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-P", "-m", "shared.serve", "--source", SOURCE, "--target", "basic"]
            + ["--host", LOOPBACK, "--port", str(port)],
            cwd=REPO_ROOT,
            env=function_environment(port, {"WORKERS": "1"}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower(), done.stderr
