"""Fake ``gcloud``, ``sam`` and ``kubectl`` commands for ``agentorch deploy``.

``install(folder)`` writes the three into ``folder`` (put it first on PATH). Each call appends
its tool and arguments to ``$FAKE_CLI_LOG`` (a NUL after each, a blank record between calls),
and a ``describe`` answers the service's URL as the platform would; an argument equal to
``$FAKE_CLI_FAIL`` makes the call fail (exit 3). They are ``sh`` scripts, so each call costs
milliseconds. ``calls(log)`` reads the log back, with the text of each ``kubectl apply -f FILE``.
"""

from __future__ import annotations

from pathlib import Path

TOOLS = ("gcloud", "sam", "kubectl")
URL = "https://{service}-abc123-ew.a.run.app"

_SCRIPT = r"""#!/bin/sh
{ printf '%s\0' "$(basename "$0")"; for a in "$@"; do printf '%s\0' "$a"; done; printf '\n'; } \
    >> "$FAKE_CLI_LOG"
previous=""
for a in "$@"; do
    if [ "$previous" = describe ]; then echo "https://$a-abc123-ew.a.run.app"; fi
    if [ -n "$FAKE_CLI_FAIL" ] && [ "$a" = "$FAKE_CLI_FAIL" ]; then exit 3; fi
    previous="$a"
done
"""


def url_of(service: str) -> str:
    return URL.format(service=service)


def install(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        script = folder / tool
        script.write_text(_SCRIPT)
        script.chmod(0o755)


def calls(log: Path, cwd: Path | None = None) -> list[dict[str, object]]:
    """Each call: ``tool``, ``args`` and, for ``kubectl apply -f FILE``, the ``file``'s text
    (a relative FILE is taken from ``cwd``, the deploy's folder)."""
    if not log.exists():
        return []
    found: list[dict[str, object]] = []
    for line in log.read_text(encoding="utf-8").split("\0\n"):
        if not line.strip("\n"):
            continue
        tool, *args = line.lstrip("\n").split("\0")
        call: dict[str, object] = {"tool": tool, "args": args}
        if tool == "kubectl" and args[:2] == ["apply", "-f"]:
            call["file"] = ((cwd or Path()) / args[2]).read_text(encoding="utf-8")
        found.append(call)
    return found
