"""Fixtures for the search tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.search.corpus_files import write_corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))
