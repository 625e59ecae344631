"""shared.entry: the app a function's target is served in, as functions-framework builds it for
its ASGI path, and loading a target from its file (no Flask anywhere)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from shared.entry import asgi_app, function_app, load_target


async def echo(request: Request) -> Response:
    if request.url.path == "/crash":
        raise RuntimeError("secret internals")
    return JSONResponse({"method": request.method, "path": request.url.path})


@pytest.fixture
def client() -> TestClient:
    return TestClient(asgi_app(echo), raise_server_exceptions=False)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/schema", "/v1/messages", "/a/b/c"])
def test_every_path_and_method_reaches_the_target(
    client: TestClient, method: str, path: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 200
    assert answer.json() == {"method": method, "path": path}


def test_robots_and_favicon_are_404s_as_functions_framework_answers_them(
    client: TestClient,
) -> None:
    assert client.get("/robots.txt").status_code == 404
    assert client.get("/favicon.ico").status_code == 404


def test_a_method_functions_framework_does_not_route_is_a_405(client: TestClient) -> None:
    assert client.request("TRACE", "/").status_code == 405


def test_a_crash_is_logged_and_a_plain_500_that_tells_nothing(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="agentorch.entry"):
        answer = client.post("/crash")
    assert answer.status_code == 500
    assert answer.text == "Internal Server Error" and "secret" not in answer.text
    assert "POST /crash" in caplog.text and "secret internals" in caplog.text


def write(folder: Path, text: str) -> Path:
    source = folder / "main.py"
    source.write_text(text)
    return source


@pytest.fixture
def restored_modules() -> object:
    saved_main, saved_path = sys.modules.get("main"), list(sys.path)
    yield None
    sys.path[:] = saved_path
    if saved_main is None:
        sys.modules.pop("main", None)
    else:
        sys.modules["main"] = saved_main


@pytest.mark.usefixtures("restored_modules")
def test_a_target_is_loaded_from_its_file_as_main_with_its_folder_importable(
    tmp_path: Path,
) -> None:
    (tmp_path / "helper_for_entry_test.py").write_text("WORD = 'beside'\n")
    source = write(
        tmp_path,
        "from starlette.responses import PlainTextResponse\n"
        "from helper_for_entry_test import WORD\n"
        "async def hello(request):\n"
        "    return PlainTextResponse(WORD)\n",
    )
    answer = TestClient(function_app(str(source), "hello")).get("/")
    assert answer.text == "beside"
    assert sys.modules["main"].__file__ == str(source.resolve())


@pytest.mark.usefixtures("restored_modules")
def test_a_missing_target_names_what_the_file_has(tmp_path: Path) -> None:
    source = write(tmp_path, "async def other(request):\n    pass\n")
    with pytest.raises(LookupError, match=r"no function 'hello' .*'other'"):
        load_target(str(source), "hello")


@pytest.mark.usefixtures("restored_modules")
def test_a_plain_def_target_is_refused_saying_what_is_served(tmp_path: Path) -> None:
    source = write(tmp_path, "def hello(request):\n    return 'hi'\n")
    with pytest.raises(TypeError, match="async def"):
        load_target(str(source), "hello")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.py"):
        load_target(str(tmp_path / "nowhere.py"), "hello")
