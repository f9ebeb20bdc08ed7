"""Skip-on-hit on a real 3-asset graph: reuse, invalidation, early cut-off, run-cache."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import materialize

from tests.dagster import graph_defs
from tests.dagster.helpers import hits, load_stored

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from dagster import materialize, instance_for_test
from tests.dagster import graph_defs as g
with instance_for_test() as inst:
    r = materialize(g.ASSETS, resources={"io_manager": g.io_manager()}, instance=inst)
    assert r.success
print(json.dumps(g.counts()))
"""


@pytest.fixture
def graph_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(project))
    monkeypatch.delenv("PIVOT_TEST_MID_CV", raising=False)
    monkeypatch.delenv("PIVOT_TEST_FACTOR", raising=False)
    yield project
    # The tests reload graph_defs under changed code versions; leave the shared module
    # as a fresh import makes it, or a later test in this worker (a step process
    # re-imports it) would see two definitions of one asset.
    for var in ("PIVOT_TEST_MID_CV", "PIVOT_TEST_FACTOR"):
        os.environ.pop(var, None)
    importlib.reload(graph_defs)


def _materialize(instance, run_config=None, selection=None):
    mod = importlib.reload(graph_defs)  # picks up env-driven code versions
    result = materialize(
        mod.ASSETS,
        resources={"io_manager": mod.io_manager()},
        instance=instance,
        run_config=run_config,
        selection=selection,
    )
    assert result.success
    return result


def test_second_process_runs_no_body_and_values_match(graph_env: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run() -> dict[str, int]:
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first = run()
    values_1 = [load_stored(graph_env, k) for k in ("raw", "total")]
    frame_1 = load_stored(graph_env, "doubled")
    assert first == {"raw": 1, "doubled": 1, "total": 1}
    second = run()
    assert second == first  # no body ran the second time
    assert [load_stored(graph_env, k) for k in ("raw", "total")] == values_1 == [[0, 1, 2], 6]
    assert load_stored(graph_env, "doubled").equals(frame_1)


def test_code_version_change_reruns_middle_and_downstream(graph_env, dagster_instance) -> None:
    _materialize(dagster_instance)
    os.environ["PIVOT_TEST_MID_CV"] = "2"
    os.environ["PIVOT_TEST_FACTOR"] = "3"
    try:
        r = _materialize(dagster_instance)
    finally:
        del os.environ["PIVOT_TEST_MID_CV"], os.environ["PIVOT_TEST_FACTOR"]
    assert graph_defs.counts() == {"raw": 1, "doubled": 2, "total": 2}
    assert hits(dagster_instance, r.run_id) == {"raw": True, "doubled": False, "total": False}
    assert load_stored(graph_env, "total") == 9


def test_identical_bytes_cut_off_downstream(graph_env, dagster_instance) -> None:
    _materialize(dagster_instance)
    os.environ["PIVOT_TEST_MID_CV"] = "2"  # new code version, same output bytes
    try:
        r = _materialize(dagster_instance)
    finally:
        del os.environ["PIVOT_TEST_MID_CV"]
    assert graph_defs.counts() == {"raw": 1, "doubled": 2, "total": 1}
    assert hits(dagster_instance, r.run_id) == {"raw": True, "doubled": False, "total": True}


def test_config_change_and_back_hits_run_cache(graph_env, dagster_instance) -> None:
    n = lambda v: {"ops": {"raw": {"config": {"n": v}}}}  # noqa: E731
    _materialize(dagster_instance, n(3))
    _materialize(dagster_instance, n(4))
    assert load_stored(graph_env, "total") == 12
    r = _materialize(dagster_instance, n(3))
    assert graph_defs.counts() == {"raw": 2, "doubled": 2, "total": 2}
    assert hits(dagster_instance, r.run_id) == {"raw": True, "doubled": True, "total": True}
    assert load_stored(graph_env, "total") == 6  # the lock points at the n=3 result again


def test_partial_selection_hits_from_locks_on_new_instance(graph_env, tmp_path) -> None:
    from dagster import instance_for_test

    with instance_for_test() as inst:
        _materialize(inst)
    with instance_for_test() as fresh:  # a second deployment sharing the store
        r = _materialize(fresh, selection=["doubled", "total"])
        assert hits(fresh, r.run_id) == {"doubled": True, "total": True}
    assert graph_defs.counts() == {"raw": 1, "doubled": 1, "total": 1}
