"""`cached(range_values=True)`: single-run backfills cached per partition (issue 14).

The body declares the convention: it returns `{partition key: value}` for whatever
partitions it runs for, one included. Then a partition's stored value is `value`
whichever run computed it, each partition's result is a run-cache entry, and range
runs and single-partition runs hit each other's results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster import BackfillPolicy, StaticPartitionsDefinition, asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_store import runcache
from pivot_store.repo import Repo
from tests.dagster.helpers import load_stored, materializations

CALLS: list[str] = []
PARTS = StaticPartitionsDefinition(["a", "b", "c"])
RANGE = {"dagster/asset_partition_range_start": "a", "dagster/asset_partition_range_end": "c"}


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


class Up(dg.Config):
    bump: str = ""


@asset(partitions_def=PARTS, backfill_policy=BackfillPolicy.single_run(), code_version="1")
@cached(range_values=True)
def raw(context: dg.AssetExecutionContext, config: Up) -> dict[str, str]:
    CALLS.append("raw:" + ",".join(context.partition_keys))
    return {pk: pk + (config.bump if pk == "b" else "") for pk in context.partition_keys}


@asset(partitions_def=PARTS, backfill_policy=BackfillPolicy.single_run(), code_version="1")
@cached(range_values=True)
def per_day(context: dg.AssetExecutionContext, raw: Any) -> dict[str, str]:
    CALLS.append(",".join(context.partition_keys))
    # Dagster hands one upstream partition as its value, several as a dict.
    raw = raw if isinstance(raw, dict) else {context.partition_key: raw}
    return {pk: f"value {raw[pk]}" for pk in context.partition_keys}


@asset(partitions_def=PARTS, code_version="1")
@cached
def reader(per_day: str) -> str:
    CALLS.append("reader")
    return per_day.upper()


def _run(assets: list[Any], project: Path, instance: Any, **kw: Any) -> Any:
    r = materialize(
        assets,
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=instance,
        **kw,
    )
    assert r.success
    return r


def _entries(project: Path, pk: str) -> int:
    repo = Repo.open(project)
    lock = repo.read_lock(f"per_day/@{pk}")
    return len(list(runcache.iter_local(repo.runs_dir, lock.name, lock.fingerprint)))


def test_a_range_run_is_a_cache_entry_per_partition(project: Path, dagster_instance) -> None:
    _run([raw, per_day], project, dagster_instance, tags=RANGE)
    assert CALLS == ["raw:a,b,c", "a,b,c"]
    assert [_entries(project, pk) for pk in "abc"] == [1, 1, 1]
    CALLS.clear()
    one = _run([raw, per_day], project, dagster_instance, partition_key="b")
    assert CALLS == []  # both hit: each partition's result, the same shape
    assert one.asset_value("per_day") == "value b" == load_stored(project, "per_day", "b")
    assert materializations(dagster_instance, "per_day")[-1].metadata["pivot/cache_hit"].value


def test_single_partition_runs_store_the_value_and_a_range_hits(
    project: Path, dagster_instance
) -> None:
    for pk in "abc":
        r = _run([raw, per_day, reader], project, dagster_instance, partition_key=pk)
        assert r.asset_value("reader") == f"VALUE {pk.upper()}"  # a value, not {pk: value}
    assert load_stored(project, "per_day", "c") == "value c"
    CALLS.clear()
    r = _run([raw, per_day], project, dagster_instance, tags=RANGE)
    assert CALLS == []  # every partition stored: the body is skipped
    assert r.asset_value("per_day") == {pk: f"value {pk}" for pk in "abc"}
    last = materializations(dagster_instance, "per_day")[-1]
    assert last.metadata["pivot/cache_hit"].value is True


def test_a_changed_partition_runs_the_range_and_the_rest_still_hit(
    project: Path, dagster_instance
) -> None:
    _run([raw, per_day], project, dagster_instance, tags=RANGE)
    cfg = {"ops": {"raw": {"config": {"bump": "!"}}}}
    _run([raw], project, dagster_instance, tags=RANGE, run_config=cfg)  # raw b changes
    CALLS.clear()
    r = _run([raw, per_day], project, dagster_instance, tags=RANGE, selection=[per_day])
    assert CALLS == ["a,b,c"]  # b's upstream changed: the body runs, for the whole range
    assert r.asset_value("per_day")["b"] == "value b!"
    assert (
        "b: upstream `raw/@b` hash"
        in materializations(dagster_instance, "per_day")[-1].metadata["pivot/why"].value
    )
    CALLS.clear()
    single = _run([raw, per_day], project, dagster_instance, partition_key="b", selection=[per_day])
    assert CALLS == [] and single.asset_value("per_day") == "value b!"


def test_a_single_run_of_another_shape_names_the_convention(
    project: Path, dagster_instance
) -> None:
    @asset(partitions_def=PARTS, code_version="1")
    @cached(range_values=True)
    def lumped(context: dg.AssetExecutionContext) -> dict[str, int]:
        return {"x": 1}

    r = materialize(
        [lumped],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
        partition_key="a",
        raise_on_error=False,
    )
    assert not r.success
    error = str(r.get_step_failure_events()[0].step_failure_data.error)
    assert "partition a returned a dict with keys ['x']" in error and "range_values" in error
    assert Repo.open(project).read_lock("lumped/@a") is None


@asset(partitions_def=PARTS, backfill_policy=BackfillPolicy.single_run(), code_version="1")
def plain_range(
    context,
) -> dict:  # unannotated: under `from __future__ import annotations` Dagster refuses a string
    return {pk: pk * 2 for pk in context.partition_keys}


@asset(partitions_def=PARTS, code_version="1")
@cached
def plain_reader(plain_range: str) -> str:
    CALLS.append("plain_reader")
    return plain_range.upper()


def test_a_downstream_of_a_range_stored_upstream_hits(project: Path, dagster_instance) -> None:
    """Without the convention too: a range run's materialization is pivot's (it names each
    partition's hash), so a cached downstream of one partition fingerprints on its lock."""
    _run([plain_range], project, dagster_instance, tags=RANGE)
    runs = [
        _run(
            [plain_range, plain_reader],
            project,
            dagster_instance,
            partition_key="b",
            selection=[plain_reader],
        )
        for _ in "12"
    ]
    assert CALLS == ["plain_reader"]
    assert runs[1].asset_value("plain_reader") == "BB"
    assert materializations(dagster_instance, "plain_reader")[-1].metadata["pivot/cache_hit"].value
