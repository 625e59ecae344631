"""Reading the corpus folder and splitting documents into titled sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.agents.search.corpus import Section, load_sections, split_markdown
from shared.errors import NotConfigured


def titles(sections: list[Section]) -> list[str]:
    return [section.title for section in sections]


def test_markdown_is_split_at_headings_and_titled_by_its_first_heading(corpus_dir: Path) -> None:
    guide = [s for s in load_sections(corpus_dir, 1_000_000) if s.source == "guide.md"]
    assert titles(guide) == [
        "Field Guide",
        "Field Guide › Running water",
        "Field Guide › Feeding",
        "Field Guide › Nesting boxes",
    ]
    assert guide[0].body == "Birds visit gardens all year."


def test_a_hash_inside_a_code_block_is_not_a_heading(corpus_dir: Path) -> None:
    feeding = next(s for s in load_sections(corpus_dir, 1_000_000) if s.title.endswith("Feeding"))
    assert "# a comment in a code block" in feeding.body
    assert "feeders = 3" in feeding.body


def test_bold_markers_are_dropped_so_snippet_marks_are_unambiguous(corpus_dir: Path) -> None:
    running = next(s for s in load_sections(corpus_dir, 1_000_000) if "Running" in s.title)
    assert "**" not in running.body
    assert "brings warblers close" in running.body


def test_files_found_recursively_hidden_and_other_files_skipped(corpus_dir: Path) -> None:
    sources = {section.source for section in load_sections(corpus_dir, 1_000_000)}
    assert sources == {"guide.md", "notes.txt", "deep/herons.md"}


def test_text_file_is_one_section_titled_by_file_name(corpus_dir: Path) -> None:
    notes = [s for s in load_sections(corpus_dir, 1_000_000) if s.source == "notes.txt"]
    assert notes == [
        Section(
            source="notes.txt",
            title="notes.txt",
            body="Plain notes: the orchestra rehearses on Tuesdays.",
        )
    ]


def test_markdown_without_a_level_one_heading_is_titled_by_file_name() -> None:
    sections = split_markdown("## Wading\n\nA heron.\n", "deep/herons.md", "herons.md")
    assert titles(sections) == ["herons.md › Wading"]


def test_text_before_the_first_heading_is_kept() -> None:
    sections = split_markdown("Preface.\n\n# Title\n\nBody.\n", "a.md", "a.md")
    assert [(s.title, s.body) for s in sections] == [("Title", "Preface."), ("Title", "Body.")]


def test_large_files_are_skipped(corpus_dir: Path) -> None:
    size_of_notes = len((corpus_dir / "notes.txt").read_bytes())
    sources = {s.source for s in load_sections(corpus_dir, max_file_bytes=size_of_notes)}
    assert sources == {"notes.txt"}


def test_missing_folder_is_not_configured_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(NotConfigured) as caught:
        load_sections(missing, 1_000_000)
    assert caught.value.status_code == 503
    assert str(missing) in caught.value.message
    assert "SEARCH_CORPUS_DIR" in caught.value.message
