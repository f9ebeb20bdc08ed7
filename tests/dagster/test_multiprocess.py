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
