"""LOG_FILE: the same JSON lines as stderr, appended to a file; a file that cannot be opened
is one warning, never a crash."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import logs
from shared.context import REQUEST_ID, bind_request_id

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    logs.configure()  # back to stderr only, closing any file the test opened


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_the_file_gets_the_same_lines_as_stderr_appended(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    path.write_text('{"msg": "from an earlier start"}\n')
    stderr = io.StringIO()
    logs.configure({"LOG_FILE": str(path)}, stream=stderr)
    log = logs.get_logger("test")
    token = bind_request_id("req-7")
    try:
        log.info("answered", extra={"deployment": "anthropic"})
    finally:
        REQUEST_ID.reset(token)
    log.warning("second")
    earlier, *written = lines_of(path.read_text())
    assert earlier == {"msg": "from an earlier start"}
    assert written == lines_of(stderr.getvalue())
    assert [(line["msg"], line.get("request_id")) for line in written] == [
        ("answered", "req-7"),
        ("second", None),
    ]
    assert written[0]["deployment"] == "anthropic"


def test_unset_or_empty_means_stderr_only() -> None:
    for environ in ({}, {"LOG_FILE": ""}, {"LOG_FILE": "  "}):
        stderr = io.StringIO()
        logs.configure(environ, stream=stderr)
        logs.get_logger("test").info("hello")
        handlers = logging.getLogger(logs.ROOT_LOGGER).handlers
        # exactly FileHandler: pytest's own log handlers may be attached here too
        assert logging.FileHandler not in {type(h) for h in handlers}, environ
        assert [line["msg"] for line in lines_of(stderr.getvalue())] == ["hello"]


def open_descriptors_of(path: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path))


def test_configuring_again_closes_the_old_file_and_opens_the_new(tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    logs.configure({"LOG_FILE": str(first)}, stream=io.StringIO())
    logs.get_logger("test").info("one")
    assert open_descriptors_of(first) == 1
    logs.configure({"LOG_FILE": str(second)}, stream=io.StringIO())
    logs.get_logger("test").info("two")
    assert [line["msg"] for line in lines_of(first.read_text())] == ["one"]
    assert [line["msg"] for line in lines_of(second.read_text())] == ["two"]
    assert open_descriptors_of(first) == 0


def test_a_file_that_cannot_be_opened_is_one_warning_and_stderr_goes_on(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "gateway.log"
    stderr = io.StringIO()
    logs.configure({"LOG_FILE": str(missing), "LOG_LEVEL": "info"}, stream=stderr)
    logs.get_logger("test").info("still logged")
    warning, line = lines_of(stderr.getvalue())
    assert warning["severity"] == "WARNING"
    assert warning["msg"] == (
        f"$LOG_FILE={missing}: cannot append to it (No such file or directory); "
        "logging to stderr only"
    )
    assert line["msg"] == "still logged"
    assert not missing.parent.exists()


def test_after_copytruncate_lines_start_again_at_the_top(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    logs.configure({"LOG_FILE": str(path)}, stream=io.StringIO())
    logs.get_logger("test").info("before rotation " + "x" * 500)
    os.truncate(path, 0)  # what logrotate's copytruncate does after copying
    logs.get_logger("test").info("after rotation")
    data = path.read_bytes()
    assert not data.startswith(b"\0"), "wrote at the old offset, leaving a hole"
    assert [line["msg"] for line in lines_of(data.decode())] == ["after rotation"]


WRITER = """
import sys
from shared.logs import get_logger
log = get_logger("writer")
for n in range(int(sys.argv[1])):
    log.info(sys.argv[2] * 10_000, extra={"n": n})
"""


def test_processes_sharing_the_file_keep_their_lines_whole(tmp_path: Path) -> None:
    path = tmp_path / "shared.log"
    environ = {**os.environ, "LOG_FILE": str(path)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, "200", letter],
            cwd=REPO_ROOT,
            env=environ,
            stderr=subprocess.DEVNULL,
        )
        for letter in "ab"
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    lines = lines_of(path.read_text())  # a split or interleaved line would not parse
    assert sorted((line["msg"][0], line["n"]) for line in lines) == sorted(
        (letter, n) for letter in "ab" for n in range(200)
    )
    assert all(line["msg"] == line["msg"][0] * 10_000 for line in lines)
