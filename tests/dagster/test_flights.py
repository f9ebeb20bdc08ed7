"""One computation per fingerprint at a time: two processes, one body run, two results."""

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
    from dagster import asset, materialize
    from pivot_dagster import PivotIOManager, cached

    project, calls, body_s, wait_s = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

    @asset
    @cached
    def slow() -> dict:
        with open(calls, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(body_s)
        return {"answer": 42}

    io = PivotIOManager(project_dir=project, single_flight_timeout_s=float(wait_s))
    r = materialize([slow], resources={"io_manager": io})
    m = r.asset_materializations_for_node("slow")[0]
    print(json.dumps({"ok": r.success, "hit": m.metadata["pivot/cache_hit"].value,
                      "value": r.asset_value("slow")}))
    """
)


def _start(tmp: Path, project: Path, body_s: float, wait_s: float) -> subprocess.Popen[str]:
    script = tmp / "flight_run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp / "dh")}
    (tmp / "dh").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(script), str(project), str(tmp / "calls"), str(body_s), str(wait_s)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(ps: list[subprocess.Popen[str]]) -> list[dict]:
    out = []
    for p in ps:
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _wait_for_body(calls: Path) -> None:
    deadline = time.monotonic() + 120
    while not (calls.exists() and calls.read_text().strip()):
        assert time.monotonic() < deadline, "the first run's body never started"
        time.sleep(0.05)


def test_two_runs_of_one_fingerprint_compute_it_once(tmp_path: Path, project: Path) -> None:
    """The second run reaches the fingerprint while the first computes it: it waits, hits."""
    first = _start(tmp_path, project, body_s=4.0, wait_s=600)
    _wait_for_body(tmp_path / "calls")  # the first holds the flight now
    second = _start(tmp_path, project, body_s=4.0, wait_s=600)
    a, b = _results([first, second])
    assert (tmp_path / "calls").read_text().count("\n") == 1  # one body run in all
    assert a == {"ok": True, "hit": False, "value": {"answer": 42}}
    assert b == {"ok": True, "hit": True, "value": {"answer": 42}}
    flight_dir = Repo(project).pivot_dir / "tmp" / "flight"
    assert list(flight_dir.iterdir()) == []  # finished flights leave no file


def test_a_waiter_that_times_out_computes_it_too(tmp_path: Path, project: Path) -> None:
    first = _start(tmp_path, project, body_s=8.0, wait_s=600)
    _wait_for_body(tmp_path / "calls")
    second = _start(tmp_path, project, body_s=0.0, wait_s=0.5)
    b, a = _results([second, first])
    assert (tmp_path / "calls").read_text().count("\n") == 2
    assert a["hit"] is False and b["hit"] is False
    assert a["value"] == b["value"] == {"answer": 42}
