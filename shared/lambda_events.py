"""AWS Lambda's HTTP events, read into one request and answered in the shape each expects.

Two shapes reach a function behind HTTP on Lambda:

- **payload format 2.0**: a Function URL, or an API Gateway HTTP API. ``rawPath`` and
  ``rawQueryString`` as sent, ``headers`` one string each (lower-case names, a repeated header's
  values joined by commas), the cookies apart in ``cookies``, the method and the caller's address
  in ``requestContext.http``; ``body`` a string, base64 when ``isBase64Encoded``. It is answered
  with ``{statusCode, headers, body, isBase64Encoded, cookies}``: each ``Set-Cookie`` in
  ``cookies``, a repeated header joined by commas.
- **payload format 1.0**: an API Gateway REST API (``httpMethod``, ``path``,
  ``multiValueHeaders``, ``multiValueQueryStringParameters``, ``requestContext.identity``),
  answered with ``{statusCode, headers, multiValueHeaders, body, isBase64Encoded}``.

An event that is neither is ``NotHttpEvent`` (the caller may know it: an SQS batch); one that is
an HTTP event but malformed is a ``BadRequest`` naming the field, answered as a 400. An answer
is text when its media type is and it decodes as UTF-8; anything else goes base64.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from shared.errors import BadRequest
from shared.http import EXECUTION_ID

TEXT_TYPES = ("text/", "application/json", "+json", "javascript", "xml", "x-www-form-urlencoded")
"""Media types answered as text (when the body decodes): ``text/event-stream`` among them."""


EXECUTION_ID_HEADER = EXECUTION_ID.encode()
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""An HTTP field name (RFC 9110's ``token``)."""
_METHOD = re.compile(r"[A-Za-z]{1,16}")


class NotHttpEvent(ValueError):
    """The event is not an HTTP event (a Function URL or API Gateway payload)."""


@dataclass(frozen=True)
class HttpEvent:
    """One HTTP request, as an ASGI scope needs it, and which shape to answer in."""

    version: str
    """``"2.0"`` (Function URL, HTTP API) or ``"1.0"`` (REST API)."""
    method: str
    path: str
    """Without the API Gateway stage, percent-escapes as sent."""
    root_path: str
    """``/STAGE`` when API Gateway put a named stage before the path; else empty."""
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    source_ip: str


def read_event(event: Any, *, execution_id: str | None = None) -> HttpEvent:
    """The request an HTTP event carries: ``NotHttpEvent`` if it is not one, ``BadRequest``
    naming the field when it is one but malformed. ``execution_id`` (Lambda's request id) is
    sent as functions-framework's execution id header unless the caller sent one."""
    request = _read(event)
    if execution_id and all(name != EXECUTION_ID_HEADER for name, _ in request.headers):
        request.headers.append((EXECUTION_ID_HEADER, execution_id.encode("latin-1", "replace")))
    return request


def _read(event: Any) -> HttpEvent:
    if not isinstance(event, dict):
        raise NotHttpEvent(f"a Lambda event is a JSON object, got {type(event).__name__}")
    context = event.get("requestContext")
    if event.get("version") == "2.0" and isinstance(context, dict) and "http" in context:
        return _read_v2(event, context)
    if "httpMethod" in event and isinstance(context, dict):
        return _read_v1(event, context)
    keys = ", ".join(sorted(map(str, event))[:8]) or "none"
    raise NotHttpEvent(
        "not an HTTP event (a Function URL or API Gateway payload format 2.0 or 1.0): "
        f"its keys are {keys}"
    )


def _read_v2(event: dict[str, Any], context: dict[str, Any]) -> HttpEvent:
    http = _object(context["http"], "requestContext.http")
    headers = _headers(_object(_given(event, "headers"), "headers"), "headers")
    cookies = event.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise BadRequest("event field cookies must be a list of strings")
    if any(c in cookie for cookie in cookies for c in "\r\n\0"):
        raise BadRequest("event field cookies holds a CR, LF or NUL")
    if cookies:
        headers.append((b"cookie", _latin1("; ".join(cookies), "cookies")))
    raw_path = _string(event.get("rawPath") or http.get("path") or "/", "rawPath")
    path, root_path = _strip_stage(raw_path, context.get("stage"))
    return HttpEvent(
        version="2.0",
        method=_method(http.get("method"), "requestContext.http.method"),
        path=path,
        root_path=root_path,
        query=_latin1(_string(event.get("rawQueryString") or "", "rawQueryString"), "query"),
        headers=headers,
        body=_body(event),
        source_ip=_string(http.get("sourceIp") or "", "requestContext.http.sourceIp"),
    )


def _read_v1(event: dict[str, Any], context: dict[str, Any]) -> HttpEvent:
    multi = event.get("multiValueHeaders")
    if multi:
        joined = {}
        for name, values in _object(multi, "multiValueHeaders").items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadRequest(f"event field multiValueHeaders.{name} must be strings")
            # Cookie fields are one list joined by "; " (RFC 6265; HTTP/2 sends each apart).
            joined[name] = ("; " if name.lower() == "cookie" else ", ").join(values)
        headers = _headers(joined, "multiValueHeaders")
    else:
        headers = _headers(_object(_given(event, "headers"), "headers"), "headers")
    identity = context.get("identity") or {}
    source_ip = identity.get("sourceIp") if isinstance(identity, dict) else None
    raw_path = _string(event.get("path") or "/", "path")
    path, root_path = _strip_stage(raw_path, None)
    return HttpEvent(
        version="1.0",
        method=_method(event.get("httpMethod"), "httpMethod"),
        path=path,
        root_path=root_path,
        query=_v1_query(event),
        headers=headers,
        body=_body(event),
        source_ip=_string(source_ip or "", "requestContext.identity.sourceIp"),
    )


def _v1_query(event: dict[str, Any]) -> bytes:
    """REST API events carry the query decoded, by parameter: encode it again."""
    multi = event.get("multiValueQueryStringParameters")
    single = event.get("queryStringParameters")
    pairs: list[tuple[str, str]] = []
    if multi:
        for name, values in _object(multi, "multiValueQueryStringParameters").items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadRequest(f"event field multiValueQueryStringParameters.{name} is bad")
            pairs += [(name, value) for value in values]
    elif single:
        for name, value in _object(single, "queryStringParameters").items():
            pairs.append((name, _string(value, f"queryStringParameters.{name}")))
    text = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    return text.encode("ascii")


def _strip_stage(raw_path: str, stage: Any) -> tuple[str, str]:
    """A named API Gateway stage is the path's first segment: the app's routes do not have it."""
    if not raw_path.startswith("/"):
        raise BadRequest(f"event path must start with '/', got {raw_path[:80]!r}")
    if isinstance(stage, str) and stage and stage != "$default":
        prefix = f"/{stage}"
        if raw_path == prefix or raw_path.startswith(prefix + "/"):
            return raw_path[len(prefix) :] or "/", prefix
    return raw_path, ""


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadRequest(f"event field body must be a string, got {type(body).__name__}")
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise BadRequest(
            f"event field isBase64Encoded must be true or false, got {type(encoded).__name__}"
        )
    if encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(
                f"event body is marked isBase64Encoded but is not base64: {exc}"
            ) from exc
    return body.encode("utf-8", "surrogatepass")


def _headers(raw: Mapping[str, Any], where: str) -> list[tuple[bytes, bytes]]:
    """What HTTP could have carried: a token for a name, no CR, LF or NUL in a value (an
    HTTP server refuses either with a 400; an app may pass headers on, or write them back)."""
    headers = []
    for name, value in raw.items():
        if not isinstance(value, str):
            raise BadRequest(f"event field {where}.{name} must be a string")
        if not _TOKEN.fullmatch(name):
            raise BadRequest(
                f"event field {where} has a header name that is not a token: {name!r:.60}"
            )
        if any(c in value for c in "\r\n\0"):
            raise BadRequest(f"event field {where}.{name} holds a CR, LF or NUL")
        headers.append((_latin1(name.lower(), where), _latin1(value, f"{where}.{name}")))
    return headers


def _method(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _METHOD.fullmatch(value):
        raise BadRequest(f"event field {where} must be an HTTP method, got {value!r:.40}")
    return value.upper()


def _given(event: dict[str, Any], key: str) -> Any:
    """``event[key]``, an empty object when absent or null (API Gateway sends either)."""
    value = event.get(key)
    return {} if value is None else value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"event field {where} must be an object, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"event field {where} must be a string, got {type(value).__name__}")
    return value


def _latin1(text: str, where: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # HTTP headers are bytes; API Gateway sends them as text
        if where.startswith("query"):
            return quote(text, safe="=&%+").encode("ascii")
        return text.encode("utf-8", "surrogatepass")


def decoded_path(path: str) -> str:
    """The ASGI scope's ``path``: percent-escapes decoded (``raw_path`` keeps them)."""
    return unquote(path)


def answer(
    version: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> dict[str, Any]:
    """An ASGI answer in the shape the event's ``version`` expects."""
    by_name: dict[str, list[str]] = {}
    for raw_name, raw_value in headers:
        by_name.setdefault(raw_name.decode("latin-1").lower(), []).append(
            raw_value.decode("latin-1")
        )
    text, is_base64 = _encode_body(body, by_name)
    if version == "1.0":
        return {
            "statusCode": status,
            "headers": {name: values[-1] for name, values in by_name.items()},
            "multiValueHeaders": by_name,
            "body": text,
            "isBase64Encoded": is_base64,
        }
    cookies = by_name.pop("set-cookie", [])
    result: dict[str, Any] = {
        "statusCode": status,
        "headers": {name: ",".join(values) for name, values in by_name.items()},
        "body": text,
        "isBase64Encoded": is_base64,
    }
    if cookies:
        result["cookies"] = cookies
    return result


def _encode_body(body: bytes, headers: Mapping[str, list[str]]) -> tuple[str, bool]:
    media = (headers.get("content-type") or [""])[0].lower()
    encoded = bool(headers.get("content-encoding"))  # gzip and the like: bytes, not text
    if not encoded and (not body or any(kind in media for kind in TEXT_TYPES)):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True
