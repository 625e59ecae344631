"""The FTS5 index: query handling, ranking, snippets, lazy thread-safe build, missing corpus."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.agents.search.index import (
    MAX_TERMS,
    Hit,
    SearchIndex,
    match_expression,
    query_terms,
)
from shared.errors import BadRequest, NotConfigured
from tests.agents.search.corpus_files import write_corpus


def make_index(root: Path) -> SearchIndex:
    return SearchIndex(root, snippet_tokens=12, max_file_bytes=1_000_000)


@pytest.fixture(scope="module")
def index(corpus_dir: Path) -> SearchIndex:
    return make_index(corpus_dir)


def search(index: SearchIndex, query: str, top_k: int = 5) -> list[Hit]:
    return index.search(query_terms(query), top_k)


class TestQueryTerms:
    def test_words_are_lowercased_and_deduplicated(self) -> None:
        assert query_terms("Heron heron HERON finch") == ["heron", "finch"]

    def test_fts_syntax_is_reduced_to_words(self) -> None:
        query = 'title:"grey heron" NEAR(a b) -finch* ^water (AND OR NOT)'
        assert query_terms(query) == [
            "title", "grey", "heron", "near", "b", "finch", "water", "not",
        ]  # fmt: skip

    def test_stopwords_are_dropped_unless_nothing_else_is_left(self) -> None:
        assert query_terms("how do I run the tests") == ["run", "tests"]
        assert query_terms("the who") == ["the", "who"]

    def test_underscored_names_stay_whole(self) -> None:
        assert query_terms("is ANTHROPIC_API_KEY set?") == ["anthropic_api_key", "set"]
        assert query_terms("___ _") == []

    def test_terms_are_bounded(self) -> None:
        assert len(query_terms(" ".join(f"w{n}" for n in range(100)))) == MAX_TERMS

    def test_every_term_is_quoted_and_joined_with_or(self) -> None:
        assert match_expression(["grey", "heron"]) == '"grey" OR "heron"'

    @pytest.mark.parametrize("query", ["", "   ", "?!* ()", "___"])
    def test_no_words_is_a_bad_request(self, query: str) -> None:
        with pytest.raises(BadRequest, match="no words to search for"):
            match_expression(query_terms(query))


def test_finds_the_specific_section(index: SearchIndex) -> None:
    hits = search(index, "fountain")
    assert [(hit.title, hit.source) for hit in hits] == [
        ("Field Guide › Running water", "guide.md")
    ]


def test_snippet_marks_the_matched_words(index: SearchIndex) -> None:
    (hit,) = search(index, "fountain")
    assert "**fountain**" in hit.snippet
    assert "\n" not in hit.snippet


def test_stemming_matches_other_forms(index: SearchIndex) -> None:
    # "runs" and "running" share the stem "run"; "herons" finds "heron".
    assert search(index, "runs")[0].title == "Field Guide › Running water"
    assert search(index, "herons")[0].source == "deep/herons.md"


def test_more_matching_words_rank_higher_and_scores_are_positive(index: SearchIndex) -> None:
    hits = search(index, "finches winter birds")
    assert hits[0].title == "Field Guide › Feeding"  # finches and winter
    scores = [hit.score for hit in hits]
    assert all(score > 0 for score in scores)
    assert scores == sorted(scores, reverse=True)


def test_title_words_are_searched(index: SearchIndex) -> None:
    assert search(index, "nesting")[0].title == "Field Guide › Nesting boxes"


def test_top_k_limits_the_hits(index: SearchIndex) -> None:
    assert len(search(index, "birds garden heron finches orchestra", top_k=2)) == 2


def test_no_match_is_an_empty_list(index: SearchIndex) -> None:
    assert search(index, "submarine") == []


def test_hidden_files_are_not_indexed(index: SearchIndex) -> None:
    assert search(index, "secret") == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_any_text_is_a_result_or_a_bad_request(index: SearchIndex, query: str) -> None:
    try:
        hits = search(index, query)
    except BadRequest as exc:
        assert "no words" in exc.message
    else:
        assert all(hit.score > 0 for hit in hits)


@pytest.mark.parametrize(
    "query", ['"', "'", "*", "^", ":", "(", ")", "-", "NEAR", "AND OR NOT", "body:heron", "a\0b"]
)
def test_fts_syntax_characters_never_error(index: SearchIndex, query: str) -> None:
    try:
        search(index, query)
    except BadRequest as exc:
        assert "no words" in exc.message


def test_index_is_built_lazily_once_even_under_concurrency(corpus_dir: Path) -> None:
    index = make_index(corpus_dir)
    assert index.health()["indexed"] is False  # nothing read until the first query
    threads = 8
    start = threading.Barrier(threads)
    results: list[list[Hit]] = []
    errors: list[BaseException] = []

    def query() -> None:
        start.wait()
        try:
            results.append(search(index, "heron finches"))
        except BaseException as exc:  # collected: the assertion below reports it
            errors.append(exc)

    workers = [threading.Thread(target=query) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert index.builds == 1
    assert len(results) == threads and all(result == results[0] for result in results)
    assert index.health() == {
        "corpus_dir": str(corpus_dir),
        "indexed": True,
        "documents": 3,
        "sections": 6,
    }


def test_missing_corpus_is_not_configured_and_retried_once_it_appears(tmp_path: Path) -> None:
    root = tmp_path / "later"
    index = make_index(root)
    with pytest.raises(NotConfigured, match=str(root)):
        search(index, "heron")
    write_corpus(root)
    assert search(index, "heron")[0].source == "deep/herons.md"


def test_corpus_without_documents_is_not_configured(tmp_path: Path) -> None:
    (tmp_path / "readme.rst").write_text("heron")
    with pytest.raises(NotConfigured, match="no \\*.md or \\*.txt documents"):
        search(make_index(tmp_path), "heron")
