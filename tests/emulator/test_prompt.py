"""The prompt's history goes where it can be written; nowhere writable is one line, not a crash
(the interactive container's /app is read-only to its user: issue 15, item 18)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from prompt_toolkit.history import FileHistory, InMemoryHistory
from rich.console import Console

from emulator.prompt import prompt_history


def unwritable(tmp_path: Path, name: str) -> Path:
    """A folder path that cannot be made: a plain file stands where it would be (the tests may
    run as root, whom permission bits do not stop)."""
    blocker = tmp_path / name
    blocker.write_text("not a folder")
    return blocker / "inside"


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def test_the_state_folder_when_writable(tmp_path: Path) -> None:
    term, out = console()
    history = prompt_history(tmp_path / "state" / "history", term)
    assert isinstance(history, FileHistory)
    assert (tmp_path / "state" / "history").is_file()
    assert out.getvalue() == ""


def test_xdg_state_home_when_the_state_folder_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    term, out = console()
    history = prompt_history(unwritable(tmp_path, "app") / "history", term)
    assert isinstance(history, FileHistory)
    assert (tmp_path / "xdg" / "agentorch" / "history").is_file()
    assert out.getvalue() == ""


def test_no_history_file_and_one_line_when_nothing_is_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(unwritable(tmp_path, "home")))
    term, out = console()
    history = prompt_history(unwritable(tmp_path, "app") / "history", term)
    assert isinstance(history, InMemoryHistory)
    assert len(out.getvalue().strip().splitlines()) == 1
    assert "history for this session only" in out.getvalue()
