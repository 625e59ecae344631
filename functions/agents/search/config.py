"""The search agent's settings: ``config/search.yaml``, with the environment on top."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import REPO_ROOT
from shared.settings import FunctionSettings, SettingsFile

DEFAULT_ABOUT = (
    "the documentation of Agent Orchestrator itself: what it is, its architecture, how to run "
    "and test it, the model gateway (routes, providers, retries, fallback, circuit breaker, "
    "headers), configuration and environment variables, the agents, CloudEvents, and deploying"
)


class SearchConfig(FunctionSettings):
    """``$SEARCH_CONFIG`` or ``config/search.yaml``; ``$SEARCH_CORPUS_DIR`` overrides the folder."""

    file = SettingsFile("SEARCH_CONFIG", "search.yaml")
    env = {"SEARCH_CORPUS_DIR": "corpus_dir"}

    corpus_dir: str = "config/knowledge"
    """Folder of ``*.md``/``*.txt`` documents; a relative path is taken from the repository root."""
    about: str = Field(default=DEFAULT_ABOUT, min_length=1)
    """What the corpus covers, told to the planning model so it knows when searching helps."""
    snippet_tokens: int = Field(default=24, ge=4, le=64)
    """Length of a hit's snippet, in words."""
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    """Larger files are skipped (and logged), which bounds the index's memory."""

    def corpus_path(self) -> Path:
        path = Path(self.corpus_dir).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path
