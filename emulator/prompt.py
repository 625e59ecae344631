"""``agentorch ask`` with no task: a prompt with history on a terminal, else a task a line."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from prompt_toolkit.history import History

EXIT_WORDS = frozenset({"exit", "quit", ":q"})


def tasks(history: Path, console: Console) -> Iterator[str]:
    """Tasks until end of input, Ctrl-D or ``exit``; blank lines are skipped."""
    if not sys.stdin.isatty():
        for line in sys.stdin:
            if line.strip() in EXIT_WORDS:
                return
            if line.strip():
                yield line.strip()
        return
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession(history=prompt_history(history, console))
    console.print("Ask a task (↑ for history, Ctrl-D or `exit` to leave).", markup=False)
    while True:
        try:
            line = session.prompt("task> ").strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        if line in EXIT_WORDS:
            return
        if line:
            yield line


def prompt_history(preferred: Path, console: Console) -> History:
    """The prompt's history file: ``preferred`` (in the state folder), else
    ``$XDG_STATE_HOME/agentorch/history`` (``~/.local/state`` by default), else none kept
    beyond this session, said in one line. A read-only checkout or image (the interactive
    container's /app) must not stop the prompt."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    for path in (preferred, state_home / "agentorch" / "history"):
        if writable(path):
            return FileHistory(str(path))
    console.print(
        f"(history for this session only: cannot write {preferred} nor {state_home})",
        markup=False,
        style="yellow",
        soft_wrap=True,
    )
    return InMemoryHistory()


def writable(path: Path) -> bool:
    """Whether ``path`` can be appended to, its folders made if missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            return True
    except OSError:
        return False
