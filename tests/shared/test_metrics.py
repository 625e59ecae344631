"""Metrics: configured explicitly at start-up, summed across forked workers, folder cleaned up.

Most checks run in a fresh interpreter: what happens at import and at exit is the point, and
this test process has long since imported and configured everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared import metrics
from shared.errors import ConfigError
from shared.server import ServerSettings

pytestmark = pytest.mark.processes  # most checks run in a fresh interpreter

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(script: str, **env: str) -> dict[str, Any]:
    """Run ``script`` in a new interpreter; it prints one JSON object as its last line."""
    environ = {k: v for k, v in os.environ.items() if k != metrics.FOLDER_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_importing_makes_no_folder_and_configure_makes_one_once() -> None:
    result = run_python(
        "import json, os, sys\n"
        "import shared.metrics as m\n"
        "before = os.environ.get('PROMETHEUS_MULTIPROC_DIR')\n"
        "imported = 'prometheus_client' in sys.modules\n"
        "first, second = m.configure(), m.configure()\n"
        "print(json.dumps({'before': before, 'imported': imported, 'first': first,\n"
        "    'second': second, 'exists': os.path.isdir(first)}))\n"
    )
    assert result["before"] is None
    assert result["imported"] is False
    assert result["first"] == result["second"]
    assert result["exists"] is True
    assert not Path(result["first"]).exists()  # removed when that process ended


def test_metrics_defined_before_configure_add_up_across_forked_workers() -> None:
    # What gunicorn does: the parent imports the code and configures, the workers fork.
    result = run_python(
        "import json, os\n"
        "from shared.metrics import Counter, configure, render\n"
        "SERVED = Counter('served_total', 'Requests served.', ['worker'])\n"
        "configure()\n"
        "for _ in range(2):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        SERVED.labels('any').inc()\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "SERVED.labels('any').inc()\n"
        "text = render()[0].decode()\n"
        "line = [l for l in text.splitlines() if l.startswith('served_total{')][0]\n"
        "print(json.dumps({'line': line}))\n"
    )
    assert result["line"] == 'served_total{worker="any"} 3.0'


def test_a_worker_leaving_does_not_remove_the_folder() -> None:
    # gunicorn workers exit through sys.exit, which runs atexit handlers in the worker too.
    result = run_python(
        "import json, os, sys\n"
        "from shared.metrics import configure\n"
        "folder = configure()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    sys.exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(json.dumps({'folder': folder, 'after_worker': os.path.isdir(folder)}))\n"
    )
    assert result["after_worker"] is True
    assert not Path(result["folder"]).exists()


def test_a_folder_given_by_the_environment_is_used_and_kept(tmp_path: Path) -> None:
    given = tmp_path / "metrics"
    result = run_python(
        "import json\nfrom shared.metrics import configure\n"
        "print(json.dumps({'folder': configure()}))\n",
        PROMETHEUS_MULTIPROC_DIR=str(given),
    )
    assert result["folder"] == str(given)
    assert given.is_dir()


def test_prometheus_imported_first_is_a_clear_error() -> None:
    result = run_python(
        "import json\nimport prometheus_client\nfrom shared.metrics import configure\n"
        "try:\n    configure()\n    message = None\n"
        "except RuntimeError as exc:\n    message = str(exc)\n"
        "print(json.dumps({'message': message}))\n"
    )
    assert "imported before shared.metrics.configure()" in result["message"]


@pytest.mark.parametrize("value", ["abc", "-1", "0"])
def test_a_bad_flush_interval_stops_start_up_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^\$METRICS_FLUSH_INTERVAL_S="):
        ServerSettings.load({"METRICS_FLUSH_INTERVAL_S": value})


def test_metrics_keep_counting_when_the_environment_loses_the_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = metrics.configure()
    monkeypatch.delenv(metrics.FOLDER_VARIABLE)  # as tests/conftest.py's reset does
    counter = metrics.Counter("agentorch_test_env_reset_total", "A test counter.", ["case"])
    counter.labels("reset").inc()
    assert os.environ[metrics.FOLDER_VARIABLE] == folder
    text = metrics.render()[0].decode()
    assert 'agentorch_test_env_reset_total{case="reset"} 1.0' in text


def test_buffered_histograms_render_as_prometheus_observes_them() -> None:
    # Values on, between and beyond the bounds, observed inside an event loop (buffered) and
    # by prometheus_client directly: the rendered buckets, count and sum must agree.
    result = run_python(
        "import asyncio, json\n"
        "import shared.metrics as m\n"
        "m.configure()\n"
        "import prometheus_client as p\n"
        "bounds = (0.01, 0.1, 1.0)\n"
        "ours = m.Histogram('ours_seconds', 'h', ['k'], buckets=bounds)\n"
        "theirs = p.Histogram('theirs_seconds', 'h', ['k'], buckets=bounds)\n"
        "values = [0.0, 0.01, 0.05, 0.1, 0.2, 1.0, 3.5, 0.01]\n"
        "async def observe():\n"
        "    for v in values:\n"
        "        ours.labels('a').observe(v)\n"
        "        theirs.labels('a').observe(v)\n"
        "asyncio.run(observe())\n"
        "text = m.render()[0].decode()\n"
        "lines = lambda name: sorted(l.split(name, 1)[1] for l in text.splitlines()\n"
        "    if l.startswith(name))\n"
        "print(json.dumps({'ours': lines('ours_seconds'), 'theirs': lines('theirs_seconds')}))\n"
    )
    assert result["ours"] == result["theirs"]
    assert any(line.startswith('_count{k="a"} 8.0') for line in result["ours"])


def test_counts_inside_an_event_loop_reach_the_files_within_a_second() -> None:
    # Another worker's scrape reads only the files: what this process buffered must get there
    # on its own, without a scrape of this process.
    result = run_python(
        "import asyncio, glob, json, os\n"
        "import shared.metrics as m\n"
        "folder = m.configure()\n"
        "c = m.Counter('buffered_total', 'c', ['k'])\n"
        "def on_disk():\n"
        "    from prometheus_client import CollectorRegistry\n"
        "    from prometheus_client.multiprocess import MultiProcessCollector\n"
        "    r = CollectorRegistry(); MultiProcessCollector(r, path=folder)\n"
        "    return r.get_sample_value('buffered_total', {'k': 'x'}) or 0.0\n"
        "async def run():\n"
        "    for _ in range(5):\n"
        "        c.labels('x').inc()\n"
        "    before = on_disk()\n"
        "    await asyncio.sleep(m.FLUSH_INTERVAL_S * 1.5)\n"
        "    return before, on_disk()\n"
        "before, after = asyncio.run(run())\n"
        "print(json.dumps({'before': before, 'after': after}))\n"
    )
    assert result == {"before": 0.0, "after": 5.0}
