"""Fingerprint parts `cached` computes from the asset graph: self-dependencies.

Issue 13 item 3: a partitioned asset reading its own previous partition
(`TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)`) dropped the
self-dependency, so after day 1 changed, day 2 was a hit with a wrong value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    AssetIn,
    AssetKey,
    Config,
    DailyPartitionsDefinition,
    TimeWindowPartitionMapping,
    asset,
    materialize,
)

from pivot_dagster import PivotIOManager, cached
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored

DAILY = DailyPartitionsDefinition(start_date="2026-01-01")
DAY1, DAY2 = "2026-01-01", "2026-01-02"
PREVIOUS = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


class Amount(Config):
    amount: int = 1


@asset(
    partitions_def=DAILY,
    code_version="1",
    ins={"previous": AssetIn(key=AssetKey("cumsum"), partition_mapping=PREVIOUS)},
)
@cached
def cumsum(context, config: Amount, previous: int | None) -> int:
    """A running total: day N adds its amount to day N-1's total (day 1 has none)."""
    return config.amount + (previous or 0)


def _run(project: Path, instance: Any, day: str, amount: int = 1) -> str:
    r = materialize(
        [cumsum],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=instance,
        partition_key=day,
        run_config={"ops": {"cumsum": {"config": {"amount": amount}}}},
    )
    assert r.success
    return r.run_id


def test_self_dependency_is_in_the_fingerprint(project: Path, dagster_instance: Any) -> None:
    _run(project, dagster_instance, DAY1)
    _run(project, dagster_instance, DAY2)
    assert load_stored(project, "cumsum", DAY2) == 2
    run = _run(project, dagster_instance, DAY2)
    assert hits(dagster_instance, run) == {"cumsum": True}  # nothing changed: still a hit
    _run(project, dagster_instance, DAY1, amount=10)  # day 1 changes
    run = _run(project, dagster_instance, DAY2)
    assert hits(dagster_instance, run) == {"cumsum": False}
    assert load_stored(project, "cumsum", DAY2) == 11
    repo = Repo.open(project)
    day1 = repo.read_lock(f"cumsum/@{DAY1}").outputs[0].hash
    assert repo.read_lock(f"cumsum/@{DAY2}").parts.deps == {f"cumsum/@{DAY1}": day1}
    assert repo.read_lock(f"cumsum/@{DAY1}").parts.deps == {}  # day 1 reads nothing
