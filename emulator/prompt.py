"""``agentorch ask`` with no task: a prompt with history on a terminal, else a task a line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

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
    from prompt_toolkit.history import FileHistory

    history.parent.mkdir(parents=True, exist_ok=True)
    session: PromptSession[str] = PromptSession(history=FileHistory(str(history)))
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
