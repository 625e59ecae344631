"""``agentorch up --reload``: restart a function when its source changes (a watchdog observer).

A change in a function's folder restarts that function; a change in ``shared/`` or ``config/``
restarts every function, since they all read them. Bursts of changes (an editor saving several
files) cause one restart per function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from emulator.compose import Project

WATCHED_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".csv", ".md")
SHARED_FOLDERS = ("shared", "config")
DEBOUNCE_S = 0.3


def affected(project: Project, changed: Path) -> list[str]:
    """The services a change to ``changed`` restarts."""
    if changed.suffix not in WATCHED_SUFFIXES or "__pycache__" in changed.parts:
        return []
    root = project.directory.resolve()
    try:
        relative = changed.resolve().relative_to(root)
    except ValueError:
        return []
    if relative.parts and relative.parts[0] in SHARED_FOLDERS:
        return list(project.services)
    return [
        name
        for name, service in project.services.items()
        if relative.is_relative_to(Path(service.source).parent)
    ]


class _Handler(FileSystemEventHandler):
    def __init__(self, project: Project, restart: Callable[[str], None]) -> None:
        self._project = project
        self._restart = restart
        self._pending: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("modified", "created", "moved", "deleted"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for path in filter(None, paths):
            for name in affected(self._project, Path(str(path))):
                self._schedule(name)

    def _schedule(self, name: str) -> None:
        with self._lock:
            if name in self._pending:
                return
            timer = threading.Timer(DEBOUNCE_S, self._fire, args=(name,))
            timer.daemon = True
            self._pending[name] = timer
            timer.start()

    def _fire(self, name: str) -> None:
        with self._lock:
            self._pending.pop(name, None)
        self._restart(name)


def watch(project: Project, restart: Callable[[str], None]) -> Callable[[], None]:
    """Start watching the project's function folders; returns the function that stops it."""
    observer = Observer()
    handler = _Handler(project, restart)
    for folder in _folders(project):
        observer.schedule(handler, str(folder), recursive=True)
    observer.start()

    def stop() -> None:
        observer.stop()
        observer.join(timeout=5)

    return stop


def _folders(project: Project) -> list[Path]:
    folders = {project.directory / Path(s.source).parent for s in project.services.values()}
    folders |= {project.directory / name for name in SHARED_FOLDERS}
    return sorted(f for f in folders if f.is_dir())
