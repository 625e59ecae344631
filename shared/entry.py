"""A function's entry point: the decorator its ``main.py`` puts on its target, and the app
served for that target, without loading Flask.

``@functions_framework.aio.http`` costs a function 0.2 s of CPU at every cold start before its own
code runs: importing ``functions_framework.aio`` runs the package's ``__init__``, which imports
Flask, Werkzeug, Jinja and click for the WSGI path no function here uses (bench/RESULTS.md,
"Cold start"). So a ``main.py`` marks its target with ``http`` from here instead:

- where functions-framework loads the file (``functions-framework --target T``: Cloud Functions,
  a Cloud Run source deploy, ``make gateway``), functions-framework was imported first, so
  ``http`` hands the target to ``functions_framework.aio.http``, which registers it for the ASGI
  path exactly as the decorator would;
- everywhere else (``python -m shared.serve``: the images, the emulator, the tests; Lambda)
  nothing registers it and Flask is never imported: ``asgi_app`` builds the same Starlette app
  functions-framework builds for an ASGI target, its routes and methods alike.

A target is an ``async def NAME(request) -> Response``, as functions-framework's ASGI path takes.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
import types
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported when an app is built: importing this module stays cheap
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

Target = Callable[["Request"], Awaitable["Response"]]
T = TypeVar("T", bound=Callable[..., Any])
METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]
"""The methods functions-framework routes to an HTTP target; any other is a 405."""


def under_functions_framework() -> bool:
    """Whether functions-framework is the one serving this process (it imports itself before it
    loads a ``main.py``); then gunicorn's workers serve it, unless it runs with ``--debug``."""
    return "functions_framework" in sys.modules


def http(target: T) -> T:
    """Mark ``target`` as the function's HTTP entry point (ASGI), the way
    ``@functions_framework.aio.http`` does where functions-framework serves it."""
    if under_functions_framework():
        import functions_framework.aio  # already paid for: functions-framework is loaded

        functions_framework.aio.http(target)  # registers it; hands back a wrapper of it
    return target


def load_target(source: str, target: str) -> Target:
    """The function ``target`` of the file ``source``, loaded as functions-framework loads it:
    as the module named after the file (``main``), its folder added to ``sys.path``."""
    realpath = os.path.realpath(source)
    if not os.path.isfile(realpath):
        raise FileNotFoundError(f"{source}: no such file, so no function {target!r} to serve")
    folder, filename = os.path.split(realpath)
    name = os.path.splitext(filename)[0]
    spec = importlib.util.spec_from_file_location(
        name, realpath, submodule_search_locations=[folder]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{source}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    if folder not in sys.path:  # the tests load the same files hundreds of times
        sys.path.append(folder)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return target_of(module, target)


def target_of(module: types.ModuleType, target: str) -> Target:
    """``module``'s function ``target``; a clear error naming what the module has instead, or
    saying that a plain ``def`` (functions-framework's Flask path) is not served here."""
    function = getattr(module, target, None)
    if isinstance(function, types.FunctionType) and not inspect.iscoroutinefunction(function):
        raise TypeError(
            f"{module.__file__}: {target!r} is a plain function (functions-framework's Flask "
            "path); served here is an `async def` target taking a starlette Request (its ASGI "
            "path, `@shared.entry.http`), or run it with functions-framework itself"
        )
    if not isinstance(function, types.FunctionType):
        found = ", ".join(
            repr(name)
            for name, value in vars(module).items()
            if isinstance(value, types.FunctionType)
        )
        raise LookupError(
            f"{module.__file__} has no function {target!r} to serve "
            f"(its functions: {found or 'none'})"
        )
    return function  # type: ignore[return-value]


def asgi_app(target: Target) -> Starlette:
    """The app functions-framework serves for an HTTP target on its ASGI path: every path and
    method in ``METHODS`` reaches ``target``, ``/robots.txt`` and ``/favicon.ico`` are 404s, and
    an exception ``target`` lets out is logged and answered 500 (``CrashesAre500``)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Route

    async def not_found(_: Request) -> Response:
        raise HTTPException(status_code=404, detail="Not Found")

    return Starlette(
        routes=[
            Route("/", endpoint=target, methods=METHODS),
            Route("/robots.txt", endpoint=not_found, methods=["GET"]),
            Route("/favicon.ico", endpoint=not_found, methods=["GET"]),
            Route("/{path:path}", endpoint=target, methods=METHODS),
        ],
        middleware=[Middleware(CrashesAre500)],
    )


class CrashesAre500:
    """functions-framework's ``ExceptionHandlerMiddleware``: an exception out of the target is
    logged (through the function's logs, which redact credentials) and answered with a plain 500
    that says nothing of it, instead of being raised into the server. (The project's functions
    answer their own failures in JSON: ``shared.asgi``; this is the last net under them.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            where = f"{scope.get('method', 'GET')} {scope.get('path', '/')}"
            logging.getLogger("agentorch.entry").exception("the function raised on %s", where)
            if started:
                return  # the answer is under way: the server ends the connection
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"Internal Server Error"})


def function_app(source: str, target: str) -> Starlette:
    """``asgi_app`` of the function ``target`` in the file ``source`` (``load_target``): what
    ``functions-framework --source SOURCE --target TARGET`` serves."""
    return asgi_app(load_target(source, target))
