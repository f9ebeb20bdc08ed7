"""pivot_integrity_checks: a corrupt or missing stored object fails the asset's check."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from dagster import DailyPartitionsDefinition, materialize

from pivot_dagster import PivotIOManager, pivot_asset
from pivot_dagster.checks import asset_locks, pivot_integrity_checks

DAYS = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-03")


@pivot_asset(code_version="1")
def table() -> pd.DataFrame:
    return pd.DataFrame({"x": range(100)})


@pivot_asset(code_version="1", partitions_def=DAYS)
def daily(context) -> dict:
    return {"day": context.partition_key}


def _run(project: Path, instance, *defs, partition_key=None):
    io = PivotIOManager(project_dir=str(project))
    return materialize(
        list(defs), instance=instance, resources={"io_manager": io}, partition_key=partition_key
    )


def _check_only(project: Path, instance, checks) -> list:
    """Run only the table's integrity check; its evaluations."""
    from dagster import AssetSelection

    result = materialize(
        [table, *checks],
        instance=instance,
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        selection=AssetSelection.checks_for_assets(table),
        raise_on_error=False,
    )
    return result.get_asset_check_evaluations()


def _evaluations(result) -> dict[str, bool]:
    return {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}


def test_check_passes_then_fails_on_corruption_and_loss(tmp_path: Path, dagster_instance) -> None:
    checks = pivot_integrity_checks([table])
    first = _run(tmp_path, dagster_instance, table, *checks)
    assert _evaluations(first) == {"table": True}

    repo = PivotIOManager(project_dir=str(tmp_path)).get_repo()
    (lock,) = asset_locks(repo, table.key)
    obj = repo.objects.path(lock.outputs[0].hash)
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as f:
        f.seek(10)
        f.write(b"\xff")
    # Only the check runs (the asset is a hit either way): it re-hashes and fails.
    evals = _check_only(tmp_path, dagster_instance, checks)
    assert [e.passed for e in evals] == [False]
    assert lock.outputs[0].hash in str(evals[0].metadata)

    obj.unlink()
    assert [e.passed for e in _check_only(tmp_path, dagster_instance, checks)] == [False]


def test_partitioned_asset_checks_every_partition(tmp_path: Path, dagster_instance) -> None:
    checks = pivot_integrity_checks([daily])
    for pk in DAYS.get_partition_keys():
        result = _run(tmp_path, dagster_instance, daily, *checks, partition_key=pk)
        assert all(e.passed for e in result.get_asset_check_evaluations())
    repo = PivotIOManager(project_dir=str(tmp_path)).get_repo()
    assert len(asset_locks(repo, daily.key)) == len(DAYS.get_partition_keys())
