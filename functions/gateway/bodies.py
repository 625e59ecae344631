"""Request bodies as clients send them: ``content-encoding: gzip`` or ``deflate``, decoded with a
cap on the decoded size.

The edge bounds the body as it arrives (compressed); decoding is incremental
(``zlib.decompressobj`` with ``max_length``), so a decompression bomb stops one byte past the
cap with a 413 and never takes more memory than the cap.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMedia

# wbits: 16 + MAX_WBITS reads a gzip member; MAX_WBITS a zlib stream (HTTP's "deflate");
# -MAX_WBITS raw deflate (what some clients send as "deflate" all the same).
_GZIP, _ZLIB, _RAW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


def decoded_body(headers: Mapping[str, str], body: bytes, limit: int) -> bytes:
    """``body`` with its ``content-encoding`` undone; at most ``limit`` bytes decoded."""
    encodings = [
        e.strip().lower() for e in (headers.get("content-encoding") or "").split(",") if e.strip()
    ]
    for encoding in reversed(encodings):  # the last encoding applied is undone first
        if encoding == "identity":
            continue
        if encoding in ("gzip", "x-gzip"):
            body = _inflate(body, limit, _GZIP, encoding)
        elif encoding == "deflate":
            wbits = _ZLIB if body[:1] and (body[0] & 0x0F) == 8 else _RAW
            body = _inflate(body, limit, wbits, encoding)
        else:
            raise UnsupportedMedia(
                f"content-encoding {encoding[:40]!r} is not supported; use gzip or deflate"
            )
    return body


def _inflate(data: bytes, limit: int, wbits: int, encoding: str) -> bytes:
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits)
        try:
            chunk = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise BadRequest(f"the {encoding} request body cannot be decoded: {exc}") from exc
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the decoded request body exceeds the limit of {limit} bytes")
        if not inflater.eof:
            raise BadRequest(f"the {encoding} request body is truncated")
        out.append(chunk)
        data = inflater.unused_data if wbits == _GZIP else b""  # gzip allows several members
    return b"".join(out)
