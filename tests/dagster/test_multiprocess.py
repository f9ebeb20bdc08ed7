"""Under the multiprocess executor (each step in its own process, 3 at once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import execute_job, reconstructable

from tests.dagster import graph_defs
from tests.dagster.helpers import hits, load_stored


@pytest.fixture
def graph_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(project))
    # Step processes re-import graph_defs by module name: make the repo importable.
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.chdir(root)  # Dagster resolves the job's module from the working directory
    return project


def test_multiprocess_run_then_all_hits(graph_env: Path, dagster_instance) -> None:
    job = reconstructable(graph_defs.multiprocess_job)
    with execute_job(job, instance=dagster_instance) as first:
        assert first.success
    assert load_stored(graph_env, "total") == 6
    with execute_job(job, instance=dagster_instance) as second:
        assert second.success
        assert hits(dagster_instance, second.run_id) == {
            "raw": True,
            "doubled": True,
            "total": True,
        }
    assert graph_defs.counts() == {"raw": 1, "doubled": 1, "total": 1}


def test_explain_and_origin_cross_step_processes(
    graph_env: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body's time and the miss causes reach the IO manager in each step's own
    process; a code-version change and a refresh tag are named; a hit keeps the origin."""
    from pivot_store.repo import Repo
    from tests.dagster.helpers import materializations

    def meta(key: str) -> dict:
        m = materializations(dagster_instance, key)[-1]
        return {k: v.value for k, v in m.metadata.items()}

    job = reconstructable(graph_defs.multiprocess_job)
    with execute_job(job, instance=dagster_instance) as first:
        assert first.success
    origin = Repo.open(graph_env).read_lock("doubled").origin
    assert origin.run_id == first.run_id and origin.duration_s is not None
    assert meta("doubled")["pivot/why"] == "no earlier result"
    monkeypatch.setenv("PIVOT_TEST_MID_CV", "2")
    with execute_job(job, instance=dagster_instance, tags={"pivot/refresh": "raw"}) as second:
        assert second.success
    assert meta("raw")["pivot/why"] == "refresh requested (run tag pivot/refresh)"
    assert meta("doubled")["pivot/why"] == "code version 1 -> 2"
    total = meta("total")  # same values upstream: a hit, from the first run
    assert total["pivot/cache_hit"] is True and total["pivot/found_in"] == "local lock"
    assert total["pivot/computed_by"].endswith(f"run {first.run_id}")
    assert graph_defs.counts() == {"raw": 2, "doubled": 2, "total": 1}
