"""``python -m shared.serve --source main.py --target NAME``: serve a function as
functions-framework does, with its server, from the images, the emulator and the tests.

functions-framework's server for an ASGI target is gunicorn with uvicorn workers. Most of a
function's instances run one worker (``WORKERS=1``: on Cloud Run, Knative and Lambda the
platform scales instances, not workers), and there gunicorn only adds an arbiter process that
forks that one worker, and functions-framework's import of Flask: 0.25 s of CPU of a cold
start (bench/RESULTS.md, "Cold start"). So with one worker this command runs the same uvicorn
server, settings and protocol as that worker (``shared.server.uvicorn_options``) in its own
process, on the app functions-framework would build (``shared.entry``); a stopping server
(SIGTERM, SIGINT) waits for the requests under way for ``SHUTDOWN_GRACE_S``, as a worker does.
With several workers it hands over to ``functions-framework`` itself, whose arbiter forks and
supervises them.

Arguments and environment are functions-framework's own (``--source``/``FUNCTION_SOURCE``,
``--target``/``FUNCTION_TARGET``, ``--host``/``HOST``, ``--port``/``PORT``, ``WORKERS``), so the
two commands are interchangeable.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_SOURCE = "main.py"
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a container's server listens on every interface
DEFAULT_PORT = 8080
KEEP_ALIVE_S = 2
"""How long an idle connection stays open: gunicorn's ``keepalive`` default, which its uvicorn
workers use."""


def parse(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shared.serve", description="Serve a function as functions-framework does."
    )
    parser.add_argument("--source", default=environ.get("FUNCTION_SOURCE") or DEFAULT_SOURCE)
    parser.add_argument("--target", default=environ.get("FUNCTION_TARGET"))
    parser.add_argument("--host", default=environ.get("HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=_port(environ.get("PORT"), parser))
    args = parser.parse_args(argv)
    if not args.target:
        parser.error("--target (or $FUNCTION_TARGET) names the function to serve")
    return args


def _port(value: str | None, parser: argparse.ArgumentParser) -> int:
    if not value:
        return DEFAULT_PORT
    try:
        return int(value)
    except ValueError:
        parser.error(f"$PORT={value!r} is not a port number")
        raise  # not reached: error() exits


def workers(environ: Mapping[str, str]) -> int:
    """``WORKERS`` (1 when unset or empty), as functions-framework reads it."""
    value = (environ.get("WORKERS") or "1").strip()
    try:
        count = int(value)
    except ValueError:
        raise SystemExit(f"$WORKERS={value!r} is not a number of worker processes") from None
    if count < 1:
        raise SystemExit(f"$WORKERS={value!r}: at least one worker serves a function")
    return count


def functions_framework_program() -> str:
    """functions-framework's command, beside this Python (its venv) or on ``PATH``."""
    beside = Path(sys.executable).parent / "functions-framework"
    program = str(beside) if beside.exists() else shutil.which("functions-framework")
    if program is None:
        raise SystemExit("WORKERS > 1 needs functions-framework, which is not installed")
    return program


def functions_framework_command(args: argparse.Namespace) -> list[str]:
    """The same function under ``functions-framework`` (gunicorn, its workers)."""
    program = functions_framework_program()
    return [program, "--source", args.source, "--target", args.target]  # host, port: from env


def serve(args: argparse.Namespace) -> None:
    """One process: the function's app on uvicorn, as one functions-framework worker runs it."""
    from shared import entry, server

    app = entry.asgi_app(entry.load_target(args.source, args.target))
    from uvicorn import Config, Server

    # gunicorn gives its workers' uvicorn loggers its own error log, at "error": the same here.
    logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
    config = Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        **server.uvicorn_options(),
    )
    Server(config).run()


def main(argv: Sequence[str] | None = None) -> None:
    environ = os.environ
    args = parse(argv, environ)
    if workers(environ) > 1:
        command = functions_framework_command(args)
        env = {**environ, "HOST": args.host, "PORT": str(args.port)}
        os.execve(command[0], command, env)
    serve(args)
    # uvicorn returns after a clean stop; one that could not start (its port taken) exits itself.


if __name__ == "__main__":
    main()
