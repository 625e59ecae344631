"""No query reads or lists a file, spills to disk, or learns where and as whom the server runs.

Regressions of an attack on the landed function: DuckDB allowed its temp directory (``.tmp/``
under the server's working directory) even with external access off, so ``read_text('.tmp/*')``
read other requests' spill files, and ``duckdb_settings()`` told the deployment path and that
the process ran as root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from functions.agents.data_processor.limits import QueryLimits
from functions.agents.data_processor.sandbox import connect
from tests.agents.data_processor.support import ask_sql
from tests.agents.support import FunctionClient, function_client

REPO = Path(__file__).resolve().parents[3]
READERS = [
    "read_text",
    "read_blob",
    "read_csv",
    "read_csv_auto",
    "read_json",
    "read_json_auto",
    "read_json_objects",
    "read_ndjson",
    "read_ndjson_objects",
    "read_parquet",
    "parquet_metadata",
    "parquet_schema",
    "sniff_csv",
    "glob",
]
SECRET = "another request's rows: alice,4111-1111"


@pytest.fixture
def client() -> FunctionClient:
    return function_client("data_processor")


@pytest.fixture
def spill_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spill file where DuckDB used to put them: ``.tmp/`` under the working directory."""
    monkeypatch.chdir(tmp_path)
    spill = tmp_path / ".tmp" / "duckdb_temp_storage_S32K-0.tmp"
    spill.parent.mkdir()
    spill.write_text(SECRET)
    return spill


@pytest.mark.parametrize("reader", READERS)
def test_no_table_function_lists_or_reads_the_temp_directory(
    client: FunctionClient, spill_file: Path, reader: str
) -> None:
    for path in [".tmp/*", ".tmp/**", str(spill_file), str(spill_file.parent) + "/*"]:
        answer = ask_sql(client, f"SELECT * FROM {reader}('{path}')")
        assert answer.status == 400, (reader, path, answer.body)
        assert "which this sandbox forbids" in answer.message
        assert SECRET not in str(answer.body)


def test_the_sandbox_itself_allows_no_directory(spill_file: Path) -> None:
    # The same refusal without the query process: DuckDB's own settings, in this process.
    conn = connect(QueryLimits())
    try:
        allowed, temp = (
            conn.execute(
                "SELECT current_setting('allowed_directories'), current_setting('temp_directory')"
            ).fetchone()
            or ()
        )
        assert (allowed, temp) == ([], "")
        for reader in ("read_text", "glob"):
            with pytest.raises(Exception, match="disabled by configuration"):
                conn.execute(f"SELECT * FROM {reader}('.tmp/*')").fetchall()
    finally:
        conn.close()


def test_a_query_too_big_for_memory_fails_instead_of_spilling(
    client: FunctionClient, spill_file: Path
) -> None:
    # The wall-time limit is far away (conftest.py): the memory bound ends it, however busy
    # the machine is.
    answer = ask_sql(
        client,
        "SELECT count(*) FROM (SELECT a.range, b.range FROM range(100000) a, range(10000) b "
        "ORDER BY 1 DESC)",
    )
    assert answer.status == 400
    assert "exceeded the memory limit of 256MB" in answer.message
    assert os.listdir(spill_file.parent) == [spill_file.name]  # nothing new was written
    assert ask_sql(client, "SELECT current_setting('temp_directory') AS t").rows == [{"t": ""}]


def _host_strings() -> list[str]:
    """What must not leak: where the server runs and as whom."""
    found = {os.getcwd(), str(REPO), sys.prefix, "/root"}
    home = os.path.expanduser("~")
    if home not in ("", "/"):
        found.add(home)
    return sorted(found)


INTROSPECTION = [
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM which_secret('s3://bucket/x', 's3')",
    "SELECT * FROM duckdb_temporary_files()",
    "SELECT current_setting('home_directory') AS h, current_setting('secret_directory') AS s",
    "SELECT current_setting('extension_directory') AS e",
    "SELECT * FROM pragma_user_agent()",
    "SELECT getenv('HOME')",
]


@pytest.mark.parametrize("query", INTROSPECTION)
def test_introspection_names_no_host_path_or_user(client: FunctionClient, query: str) -> None:
    answer = ask_sql(client, query)
    assert answer.status in (200, 400), answer.body
    text = str(answer.body)
    for secret in _host_strings():
        assert secret not in text, (query, secret)
