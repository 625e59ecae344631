"""``python -m bench.micro``: the small measurements that comments in the code point to.

Each row is one choice a comment justifies, timed with ``timeit`` in one process (the best of
five repeats, so the machine's other load counts least). Results replace the "Figures quoted
in the code" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

from bench.results import write_between
from shared.http import compact_json
from shared.redact import _SHAPE_HINTS, _SHAPES

BEGIN, END = "<!-- micro:begin -->", "<!-- micro:end -->"
MESSAGE = {
    "type": "message",
    "content": [{"type": "text", "text": "6*7 = 42"}],
    "usage": {"input_tokens": 20, "output_tokens": 10},
}
CLEAN = "The gateway answered after two model turns and one calculator call. " * 15


def best_us(call: Callable[[], object], number: int = 20_000) -> float:
    """The fastest of five runs of ``number`` calls, per call, in microseconds."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def rows() -> list[tuple[str, str, float, float]]:
    """(where, what, the chosen way's us, the other way's us)."""
    dumps = best_us(lambda: json.dumps(MESSAGE, ensure_ascii=False, separators=(",", ":")))
    hints = best_us(lambda: any(hint in CLEAN for hint in _SHAPE_HINTS))
    search = best_us(lambda: _SHAPES.search(CLEAN), number=2_000)
    return [
        (
            "shared/http.py `compact_json`",
            "a small Message encoded: one encoder made once / `json.dumps` with options",
            best_us(lambda: compact_json(MESSAGE)),
            dumps,
        ),
        (
            "shared/redact.py `_SHAPE_HINTS`",
            f"{len(CLEAN):,} characters of clean text: the hints / the `_SHAPES` regex",
            hints,
            search,
        ),
    ]


def render(measured: list[tuple[str, str, float, float]]) -> str:
    table = [
        f"| {where} | {what} | {chosen:.1f} / {other:.1f} | {other / chosen:.1f}x |"
        for where, what, chosen, other in measured
    ]
    return "\n".join(
        [
            BEGIN,
            "## Figures quoted in the code (`python -m bench.micro`)",
            "",
            "Each row times, with `timeit` in one process (best of five repeats), a choice a "
            "comment in the code explains; the comment points here rather than carry the figure.",
            "",
            "| code | measured | chosen / other, us | ratio |",
            "|---|---|---|---|",
            *table,
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    section = render(rows())
    print(section)
    if not args.no_write:
        write_between(section, BEGIN, END)


if __name__ == "__main__":
    main()
