"""Request bodies as clients send them: ``content-encoding: gzip`` or ``deflate``, decoded with a
cap on the decoded size, in time linear in the body, off the event loop.

The edge bounds the body as it arrives (compressed); decoding is incremental
(``zlib.decompressobj`` with ``max_length``), so a decompression bomb stops one byte past the
cap with a 413 and never takes more memory than the cap.

Bounds, each refused before the work it would cost (and nesting, ``MAX_DEPTH``, as parsed):

- at most ``MAX_CODINGS`` stacked codings (``gzip, gzip, ...``; 415 beyond): every layer
  decodes the whole body again, and no client stacks more than one or two;
- at most ``MAX_GZIP_MEMBERS`` gzip members in a layer (400 beyond): members are legal
  (``cat a.gz b.gz``), but each costs a decompressor, and 100,000 empty ones fit in 2 MB;
- the body is handed to zlib in slices that start small for each member and double as it
  goes on, so what zlib leaves over at a member's end (``unused_data``, a copy) is at most
  twice what that member consumed: the total work stays linear in the body, where taking
  ``unused_data`` as the rest of the body copied the rest once per member (quadratic).

``request_payload`` decodes and parses in a worker thread whenever that can take a while (an
encoded body, whose decoded size is unknown until decoded, or a large one), so ``/health``
and every other request on the worker are answered meanwhile.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMedia
from shared.inbound import parse_request

MAX_DEPTH = 256
"""How deeply a request body may nest (arrays and objects). Far above any real tool schema or
conversation, and far below what Python's JSON encoder can write back out: a body nested
~950 levels parsed, then failed to encode for the provider (a 502 for a client's mistake)."""
MAX_CODINGS = 4
"""Codings a ``content-encoding`` may list (``identity`` included)."""
MAX_GZIP_MEMBERS = 1000
"""gzip members one gzip layer may hold."""
OFF_LOOP_BYTES = 256 * 1024
"""Plain bodies larger than this are parsed in a worker thread (a few ms of ``json.loads``)."""

# wbits: 16 + MAX_WBITS reads a gzip member; MAX_WBITS a zlib stream (HTTP's "deflate");
# -MAX_WBITS raw deflate (what some clients send as "deflate" all the same).
_GZIP, _ZLIB, _RAW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_FIRST_SLICE, _MAX_SLICE = 64, 256 * 1024


async def request_payload(headers: Mapping[str, str], body: bytes, limit: int) -> Any:
    """The JSON payload of a request (plain or CloudEvent) with its ``content-encoding``
    undone; decoded and parsed off the event loop when that could take a while."""
    if not codings(headers) and len(body) <= OFF_LOOP_BYTES:
        return parse_request(headers, body, max_depth=MAX_DEPTH).data
    return await asyncio.to_thread(_payload, headers, body, limit)


def _payload(headers: Mapping[str, str], body: bytes, limit: int) -> Any:
    return parse_request(headers, decoded_body(headers, body, limit), max_depth=MAX_DEPTH).data


def codings(headers: Mapping[str, str]) -> list[str]:
    """The ``content-encoding`` codings of a request, in the order they were applied."""
    raw = headers.get("content-encoding") or ""
    return [coding.strip().lower() for coding in raw.split(",") if coding.strip()]


def decoded_body(headers: Mapping[str, str], body: bytes, limit: int) -> bytes:
    """``body`` with its ``content-encoding`` undone; at most ``limit`` bytes decoded."""
    return Decoder(limit).decode(codings(headers), body)


@dataclass
class Decoder:
    """Undoes codings under a decoded-size ``limit``, counting the work it does."""

    limit: int
    max_members: int = MAX_GZIP_MEMBERS
    members: int = 0
    """gzip members (or zlib streams) opened so far."""
    fed: int = 0
    """Encoded bytes handed to zlib so far, those handed again after a member's end included."""

    def decode(self, encodings: list[str], body: bytes) -> bytes:
        if len(encodings) > MAX_CODINGS:
            raise UnsupportedMedia(
                f"content-encoding lists {len(encodings)} codings; at most {MAX_CODINGS} "
                "are accepted"
            )
        for encoding in reversed(encodings):  # the last encoding applied is undone first
            if encoding == "identity":
                continue
            if encoding in ("gzip", "x-gzip"):
                body = self._inflate(body, _GZIP, encoding)
            elif encoding == "deflate":
                wbits = _ZLIB if body[:1] and (body[0] & 0x0F) == 8 else _RAW
                body = self._inflate(body, wbits, encoding)
            else:
                raise UnsupportedMedia(
                    f"content-encoding {encoding[:40]!r} is not supported; use gzip or deflate"
                )
        return body

    def _inflate(self, data: bytes, wbits: int, encoding: str) -> bytes:
        view = memoryview(data)
        out: list[bytes] = []
        size = offset = members = 0
        while offset < len(data):
            members += 1
            if members > self.max_members:
                raise BadRequest(
                    f"the {encoding} request body has more than {self.max_members} members; "
                    f"at most {self.max_members} are accepted"
                )
            self.members += 1
            inflater = zlib.decompressobj(wbits)
            step = _FIRST_SLICE
            while not inflater.eof:
                if offset >= len(data):
                    raise BadRequest(f"the {encoding} request body is truncated")
                piece = view[offset : offset + step]
                offset += len(piece)
                self.fed += len(piece)
                step = min(step * 2, _MAX_SLICE)
                try:
                    chunk = inflater.decompress(piece, self.limit - size + 1)
                except zlib.error as exc:
                    raise BadRequest(
                        f"the {encoding} request body cannot be decoded: {exc}"
                    ) from exc
                size += len(chunk)
                if size > self.limit or inflater.unconsumed_tail:
                    raise PayloadTooLarge(
                        f"the decoded request body exceeds the limit of {self.limit} bytes"
                    )
                out.append(chunk)
            if wbits != _GZIP:
                break  # a zlib or raw deflate stream is one stream: what follows is ignored
            offset -= len(inflater.unused_data)  # the next member starts there
        return b"".join(out)
