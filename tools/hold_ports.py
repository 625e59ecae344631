"""Hold the stack's default ports, as another running stack would, so a test that leaks to one
gets a wrong answer (200 ``{"status":"ok"}`` to anything) rather than a refusal.

    python tools/hold_ports.py [--parent PID] [PORT ...]   (default: functions.yaml's ports)

CI (``.ci/run``) starts it in the background around the whole run: no test may depend on a
default port being free. It prints ``holding`` and the ports once every one is bound, then a
``hold_ports: request on HOST:PORT <request line>`` line per request (each one a leak: CI fails
the run when there is any). It ends on SIGTERM, SIGINT, or once ``--parent`` (by default the
process that started it) is gone, so a killed CI run leaves no listener behind. A port already
held by something else is reported and skipped: it is held either way.

It runs before ``make setup`` (standard library only, no YAML parser): the default ports are
read from the manifest's ``port:`` lines, so an agent added by ``agentorch new agent`` is held too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"
MANIFEST = Path(__file__).resolve().parent.parent / "functions.yaml"
PORT_LINE = re.compile(r"^\s*(?:-\s+)?port:\s*(\d+)\s*(?:#.*)?$")
PARENT_POLL_S = 1.0
LEAK_MARK = "hold_ports: request on"
BODY = b'{"status":"ok"}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(BODY), BODY)
)


def manifest_ports(text: str) -> list[int]:
    """The ports of the manifest's ``port: N`` lines (one per function), in file order."""
    found = (PORT_LINE.match(line) for line in text.splitlines())
    return [int(match.group(1)) for match in found if match]


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request head (up to a blank line, bounded), log its first line, answer 200."""
    port = writer.get_extra_info("sockname")[1]
    head = b""
    # Answered all the same when the head is odd: a leaking test gets a wrong answer either way.
    with contextlib.suppress(
        asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError
    ):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
    # Each line names a leak: whatever sent it reached a default port it should not depend on.
    first = head.split(b"\r\n", 1)[0].decode("latin-1")[:200] or "(no request line)"
    print(f"{LEAK_MARK} {HOST}:{port} {first}", flush=True)
    with contextlib.suppress(OSError):
        writer.write(ANSWER)
        await writer.drain()
    writer.close()


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def hold(ports: Sequence[int], parent: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers = []
    held = []
    for port in ports:
        try:
            servers.append(await asyncio.start_server(answer, HOST, port))
            held.append(port)
        except OSError as exc:
            print(f"hold_ports: {HOST}:{port} is already taken ({exc.strerror})", file=sys.stderr)
    print("holding " + " ".join(map(str, held)), flush=True)
    while not stop.is_set():
        if not running(parent):
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=PARENT_POLL_S)
        except TimeoutError:
            continue
    for server in servers:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ports", nargs="*", type=int, metavar="PORT")
    parser.add_argument("--parent", type=int, default=os.getppid(), help="end when it ends")
    args = parser.parse_args(argv)
    ports = args.ports or manifest_ports(MANIFEST.read_text(encoding="utf-8"))
    asyncio.run(hold(ports, args.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
