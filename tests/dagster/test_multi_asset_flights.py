"""One computation per multi_asset fingerprint at a time: two processes, one body run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pivot_store.repo import Repo

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from dagster import AssetOut, materialize, multi_asset
    from pivot_dagster import PivotIOManager, cached

    project, calls = sys.argv[1], sys.argv[2]

    @multi_asset(outs={"slow_a": AssetOut(), "slow_b": AssetOut()})
    @cached
    def slow():
        with open(calls, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(4)
        return time.time_ns(), "b"

    r = materialize([slow], resources={"io_manager": PivotIOManager(project_dir=project)})
    hits = {m.asset_key.to_user_string(): m.metadata["pivot/cache_hit"].value
            for m in r.asset_materializations_for_node("slow")}
    print(json.dumps({"ok": r.success, "hits": hits,
                      "values": [r.asset_value("slow_a"), r.asset_value("slow_b")]}))
    """
)


def _start(tmp: Path, project: Path) -> subprocess.Popen[str]:
    script = tmp / "multi_flight_run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp / "dh")}
    (tmp / "dh").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(script), str(project), str(tmp / "calls")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_of_one_multi_asset_compute_it_once(tmp_path: Path, project: Path) -> None:
    """The second run claims the outputs' flights while the first computes them: it
    waits, then hits both, with the first run's values."""
    first = _start(tmp_path, project)
    deadline = time.monotonic() + 120
    calls = tmp_path / "calls"
    while not (calls.exists() and calls.read_text().strip()):
        assert time.monotonic() < deadline, "the first run's body never started"
        time.sleep(0.05)
    second = _start(tmp_path, project)
    out = []
    for p in (first, second):
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    a, b = out
    assert calls.read_text().count("\n") == 1  # one body run in all
    assert a["hits"] == {"slow_a": False, "slow_b": False}
    assert b["hits"] == {"slow_a": True, "slow_b": True}
    assert a["values"] == b["values"] and a["ok"] and b["ok"]
    assert list((Repo(project).pivot_dir / "tmp" / "flight").iterdir()) == []
