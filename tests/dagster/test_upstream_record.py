"""A step judges its pivot upstreams from the record Dagster fetched at step start.

Issue 17 (the chain ratios): asking the instance for each upstream's latest
materialization cost a query per upstream per step. Dagster already fetched
those records (one batched query) when the step started; when the record's
data version is the content hash of pivot's lock, the upstream is pivot's and
nothing is asked. Anything the record does not settle is asked as before, and
what changed between two steps of one run is seen (the record is fetched when
the later step starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    AssetMaterialization,
    StaticPartitionsDefinition,
    asset,
    materialize,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from pivot_dagster import PivotIOManager, cached
from pivot_store.repo import Repo
from tests.dagster.helpers import QueryCounter, hits, load_stored, materializations

CALLS: list[str] = []
VALUES = {"a": 1, "b": 10}
NESTED: dict[str, Any] = {}


@asset(key="a")
def a_asset() -> int:
    return VALUES["a"]


@asset(key="b")
def b_asset() -> int:
    return VALUES["b"]


@asset(code_version="1")
@cached
def total(a: int, b: int) -> int:
    CALLS.append("total")
    return a + b


@asset(key="between", deps=["a", "b"])
def between(context) -> int:
    """Runs after `a` and `b` and before `total_after`: does what NESTED asks to `b`."""
    what = NESTED.get("b")
    if what == "report":  # recorded by something else: pivot's lock of `b` is not current
        context.instance.report_runless_asset_event(
            AssetMaterialization("b", tags={DATA_VERSION_TAG: "someone-else"})
        )
    elif what == "pivot":  # another run stores a new value of `b` through pivot
        VALUES["b"] = 20
        assert materialize(
            [b_asset], resources=NESTED["resources"], instance=context.instance
        ).success
    return 0


@asset(code_version="1", deps=["between"])
@cached
def total_after(a: int, b: int) -> int:
    CALLS.append("total_after")
    return a + b


def _res(project: Path) -> dict[str, Any]:
    return {"io_manager": PivotIOManager(project_dir=str(project))}


def test_pivot_upstreams_are_not_asked_for(
    project: Path, dagster_instance: Any, monkeypatch: Any
) -> None:
    """Both upstreams stored by pivot in the same run: no query names them, and each
    key's value is its own lock's hash."""
    CALLS.clear()
    VALUES.update(a=1, b=10)
    res = _res(project)
    counting = QueryCounter(dagster_instance, monkeypatch)
    for _ in range(2):
        r = materialize([a_asset, b_asset, total], resources=res, instance=dagster_instance)
        assert r.success
    assert hits(dagster_instance, r.run_id)["total"] is True
    assert CALLS == ["total"]
    assert "a" not in counting.keys and "b" not in counting.keys
    repo = Repo.open(project)
    deps = repo.read_lock("total").parts.deps
    assert deps == {k: repo.read_lock(k).outputs[0].hash for k in ("a", "b")}
    assert deps["a"] != deps["b"]


def test_upstream_reported_between_two_steps_is_seen(project: Path, dagster_instance: Any) -> None:
    """`b` recorded by something else after its step and before `total_after`'s: the
    step must not take pivot's lock of `b` as current; `a` is still pivot's."""
    CALLS.clear()
    VALUES.update(a=1, b=10)
    NESTED.clear()
    res = _res(project)
    assets = [a_asset, b_asset, between, total_after]
    assert materialize(assets, resources=res, instance=dagster_instance).success
    NESTED["b"] = "report"
    r = materialize(assets, resources=res, instance=dagster_instance)
    assert r.success
    assert hits(dagster_instance, r.run_id)["total_after"] is False
    meta = materializations(dagster_instance, "total_after")[-1].metadata
    assert "upstream `b` is on pivot's IO manager" in meta["pivot/not_cached"].value
    deps = Repo.open(project).read_lock("total_after").parts.deps
    assert deps["a"] == Repo.open(project).read_lock("a").outputs[0].hash
    assert deps["b"].startswith("missing")
    assert CALLS == ["total_after", "total_after"]


def test_upstream_stored_again_between_two_steps_is_seen(
    project: Path, dagster_instance: Any
) -> None:
    """Another run stores a new `b` through pivot between `b`'s step and `total_after`'s:
    the step reads the new value, not the one its own run stored."""
    CALLS.clear()
    VALUES.update(a=1, b=10)
    NESTED.clear()
    res = _res(project)
    assets = [a_asset, b_asset, between, total_after]
    assert materialize(assets, resources=res, instance=dagster_instance).success
    assert load_stored(project, "total_after") == 11
    NESTED.update(b="pivot", resources=res)
    r = materialize(assets, resources=res, instance=dagster_instance)
    assert r.success
    assert hits(dagster_instance, r.run_id)["total_after"] is False
    assert load_stored(project, "total_after") == 21
    assert Repo.open(project).read_lock("total_after").parts.deps["b"] == (
        Repo.open(project).read_lock("b").outputs[0].hash
    )


DAYS = StaticPartitionsDefinition(["d1", "d2"])


@asset(key="daily", partitions_def=DAYS)
def daily(context) -> str:
    return f"day {context.partition_key}"


@asset(code_version="1", partitions_def=DAYS)
@cached
def per_day(context, daily: str) -> str:
    CALLS.append(context.partition_key)
    return daily.upper()


def test_partitioned_upstream_is_judged_per_partition(project: Path, dagster_instance: Any) -> None:
    """The step's record of a partitioned upstream is any partition's: a report on
    `daily[d2]` makes `per_day[d2]` a miss and leaves `per_day[d1]` a hit."""
    CALLS.clear()
    res = _res(project)

    def run(pk: str) -> bool:
        r = materialize([daily, per_day], resources=res, instance=dagster_instance,
                        partition_key=pk, selection=[per_day])  # fmt: skip
        assert r.success
        return hits(dagster_instance, r.run_id)["per_day"]

    for pk in ("d1", "d2"):
        assert materialize([daily], resources=res, instance=dagster_instance,
                           partition_key=pk).success  # fmt: skip
    assert [run("d1"), run("d2"), run("d1"), run("d2")] == [False, False, True, True]
    dagster_instance.report_runless_asset_event(
        AssetMaterialization("daily", partition="d2", tags={DATA_VERSION_TAG: "elsewhere"})
    )
    assert [run("d1"), run("d2")] == [True, False]
    deps = Repo.open(project).read_lock("per_day/@d2").parts.deps
    assert deps["daily/@d2"].startswith("missing")
    assert CALLS == ["d1", "d2", "d2"]
