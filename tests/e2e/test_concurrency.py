"""Contract line 5 under Dagster: 4 concurrent runs, each with the multiprocess
executor (2 steps at once: 8 step processes), materialize overlapping assets into
one store while `pivot gc --grace 0` loops beside them. No failures, the store
verifies, every lock is valid, and every run recorded the same hash per asset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pivot_store.cli.commands import collect_garbage
from pivot_store.integrity import verify
from pivot_store.lockfile import read_lock
from pivot_store.repo import Repo

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dagster-concurrency")]
ROOT = Path(__file__).resolve().parents[2]
RUNS = ["all", "left", "right", "mid"]


def test_four_multiprocess_runs_share_one_store(tmp_path: Path) -> None:
    project = tmp_path / "shared"
    Repo.init(project)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    procs = []
    for i, sel in enumerate(RUNS):
        home = tmp_path / f"home{i}"
        home.mkdir()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PIVOT_TEST_PROJECT": str(project),
            "PIVOT_TEST_SELECTION": sel,
            "PYTHONPATH": path,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.concurrency_defs"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    t0 = time.monotonic()
    gc_runs = removed = 0
    while any(p.poll() is None for p in procs) and time.monotonic() - t0 < 170:
        res = collect_garbage(Repo(project), grace_hours=0)
        gc_runs += 1
        removed += len(res.removed)
        time.sleep(0.2)
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - t0
    assert all(o["success"] for o in outs), [o["failures"] for o in outs]
    by_asset: dict[str, set[str]] = {}
    for o in outs:
        for key, h in o["hashes"].items():
            by_asset.setdefault(key, set()).add(h)
    fresh = Repo(project)
    res = verify(fresh.objects)
    locks = [read_lock(p) for p in fresh.stages_dir.rglob("*.lock")]
    print(
        f"\n[dagster concurrency] 4 runs x multiprocess(2) in {elapsed:.0f} s:"
        f" {sum(len(o['hashes']) for o in outs)} materializations, 0 failures;"
        f" {gc_runs} gc --grace 0 runs beside them removed {removed};"
        f" verify checked {res.checked} objects, {len(res.corrupt)} corrupt; {len(locks)} locks"
    )
    assert res.corrupt == []
    assert all(len(hs) == 1 for hs in by_asset.values()), by_asset  # equal across runs
    lock_hash = {lock.name: lock.outputs[0].hash for lock in locks}
    for key, hs in by_asset.items():
        assert lock_hash[key] == next(iter(hs))
        assert fresh.objects.exists(lock_hash[key])
    assert len(by_asset) == 5
