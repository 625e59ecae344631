"""Before/after: the same benchmarks against two checkouts, alternated in one sitting.

    python3 bench/compare.py BASE_DIR NEW_DIR [--rounds 2] [--only gateway,profile,...]

Each checkout runs its own code with its own ``.venv`` (``make setup`` in it first). Every round
runs each benchmark on both checkouts back to back, the order flipped from one round to the
next, so that drift in the machine's load falls on both; the figures are then printed side by
side, one line per run under each row. On a shared machine two runs of the same code differ
widely: read the steadier figures (CPU per request or per task) over several rounds.

The benchmarks (how long each takes: bench/RESULTS.md, "Before and after"):

- ``gateway``: ``python -m bench.gateway --skip-litellm --seconds 5`` (wrk and nginx needed);
- ``profile``: ``python -m bench.orchestrator --profile`` (in-process CPU per task);
- ``inflight``: ``python -m bench.inflight --skip-litellm --seconds 10`` (runs shorter than
  ``make bench-inflight``'s 30 s, so its ratios to the ideal are lower; the same on both);
- ``stack``: ``python -m bench.stack`` (the emulator's whole stack).

``inflight`` and ``stack`` write their section of the checkout's bench/RESULTS.md; the file is
put back as it was after each run. Only the standard library is used here, so any python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Rows = dict[str, list[str]]
"""One run's figures: a row's name (its table's number and first cell) -> the rest of the row.
A table's header row is kept under ``"<table>: header"``."""


def table_rows(text: str) -> Rows:
    """The rows of every markdown table in ``text``, and its ``**Streams**`` line."""
    rows: Rows = {}
    table = 0
    in_table = False
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not in_table:
                rows[f"{table}: header"] = cells[1:]
            elif not set(cells[0]) <= {"-", " ", ":"}:
                label = f"{table}: {cells[0]}"
                while label in rows:  # the same server at another load
                    label += " (again)"
                rows[label] = cells[1:]
            in_table = True
            continue
        table += in_table
        in_table = False
        if line.startswith("**Streams**"):
            rows["streams"] = [line.removeprefix("**Streams**: ")]
    return rows


def json_rows(text: str) -> Rows:
    figures = json.loads(text.strip().splitlines()[-1])
    return {k: [f"{v:.3f}" if isinstance(v, float) else str(v)] for k, v in figures.items()}


class Bench:
    def __init__(self, args: list[str], read: Callable[[str], Rows], writes: bool) -> None:
        self.args, self.read, self.writes = args, read, writes

    def run(self, checkout: Path, scratch: Path) -> tuple[Rows, float]:
        """The figures of one run in ``checkout``, and how long it took in seconds."""
        output = scratch / "gateway.md"
        args = [a.replace("{output}", str(output)) for a in self.args]
        results = checkout / "bench" / "RESULTS.md"
        saved = scratch / "RESULTS.md.saved"
        if self.writes:
            shutil.copyfile(results, saved)
        began = time.monotonic()
        try:
            done = subprocess.run(
                [str(checkout / ".venv" / "bin" / "python"), "-m", *args],
                cwd=checkout,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            if self.writes:
                shutil.copyfile(saved, results)
        elapsed = time.monotonic() - began
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            return {"failed": [f"exit {done.returncode}: {tail}"]}, elapsed
        text = output.read_text() if "{output}" in " ".join(self.args) else done.stdout
        return self.read(text), elapsed


BENCHES = {
    "gateway": Bench(
        ["bench.gateway", "--skip-litellm", "--seconds", "5", "--output", "{output}"],
        table_rows,
        writes=False,
    ),
    "profile": Bench(["bench.orchestrator", "--profile"], json_rows, writes=False),
    "inflight": Bench(
        ["bench.inflight", "--skip-litellm", "--seconds", "10"], table_rows, writes=True
    ),
    "stack": Bench(["bench.stack"], table_rows, writes=True),
}


def side_by_side(name: str, runs: dict[str, list[tuple[Rows, float]]]) -> str:
    """Each row of ``name``'s tables, then under it that row from every run: base and new
    alternately, round by round, the columns aligned."""
    (base, base_runs), (new, new_runs) = runs.items()
    took = [" ".join(f"{s:.0f}" for _, s in side) for side in (base_runs, new_runs)]
    lines = [f"== {name} (seconds per run: base {took[0]}; new {took[1]})"]
    lines += [f"   base = {base}", f"   new  = {new}"]
    labels = dict.fromkeys(label for rows, _ in base_runs + new_runs for label in rows)
    for label in labels:
        if label.endswith(": header"):
            continue
        header = base_runs[0][0].get(label.split(": ", 1)[0] + ": header", [])
        grid = [["", *header]] if header else []
        for number, (b, n) in enumerate(zip(base_runs, new_runs, strict=True), start=1):
            grid.append([f"base r{number}", *b[0].get(label, ["-"])])
            grid.append([f"new  r{number}", *n[0].get(label, ["-"])])
        widths = [max(len(row[i]) for row in grid if i < len(row)) for i in range(len(grid[0]))]
        lines.append(f"-- {label}")
        for row in grid:
            cells = [
                cell.rjust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row)
            ]
            lines.append("   " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the checkout before (with its own .venv)")
    parser.add_argument("new", type=Path, help="the checkout after (with its own .venv)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    args = parser.parse_args()
    checkouts = [args.base.resolve(), args.new.resolve()]
    for checkout in checkouts:
        if not (checkout / ".venv" / "bin" / "python").exists():
            raise SystemExit(f"{checkout}: no .venv; run `make setup` in it first")
    names = args.only.split(",")
    runs: dict[str, dict[str, list[tuple[Rows, float]]]] = {
        name: {str(c): [] for c in checkouts} for name in names
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as folder:
        for round_ in range(args.rounds):
            order = checkouts if round_ % 2 == 0 else checkouts[::-1]
            for name in names:
                for checkout in order:
                    print(f"round {round_ + 1}: {name} in {checkout}", file=sys.stderr)
                    runs[name][str(checkout)].append(BENCHES[name].run(checkout, Path(folder)))
    for name in names:
        print(side_by_side(name, runs[name]) + "\n")
    print(f"{args.rounds} rounds in {(time.monotonic() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
