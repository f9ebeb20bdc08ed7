"""`cached` keeps Dagster's result semantics (issue 14 items C2-C7).

Each test runs the same assets under `FilesystemIOManager` without `cached`
(the reference: what a Dagster user sees today) and under `PivotIOManager`
with `cached`, and asserts the same values, metadata and events, plus the hit.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSpec,
    AssetIn,
    BackfillPolicy,
    DagsterEventType,
    DataVersion,
    FilesystemIOManager,
    MaterializeResult,
    Output,
    StaticPartitionsDefinition,
    asset,
    materialize,
    multi_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from pivot_dagster import PivotIOManager, cached
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored, materializations

CALLS: list[str] = []
PARTS = StaticPartitionsDefinition(["a", "b", "c"])
RANGE = {
    "dagster/asset_partition_range_start": "a",
    "dagster/asset_partition_range_end": "c",
}


def _pivot(project: Path) -> dict[str, Any]:
    return {"io_manager": PivotIOManager(project_dir=str(project))}


def _fs(tmp_path: Path) -> dict[str, Any]:
    return {"io_manager": FilesystemIOManager(base_dir=str(tmp_path / "fs"))}


def _run(assets: list[Any], resources: dict[str, Any], instance: Any, **kw: Any) -> Any:
    r = materialize(assets, resources=resources, instance=instance, **kw)
    assert r.success
    return r


def _events(instance: Any, run_id: str, kind: DagsterEventType) -> list[Any]:
    return instance.get_records_for_run(run_id, of_type=kind).records


def _user_meta(m: Any) -> dict[str, Any]:
    """The asset's own metadata: without pivot's keys and FilesystemIOManager's `path`."""
    return {k: v.value for k, v in m.metadata.items() if not k.startswith("pivot/") and k != "path"}


def _locks(project: Path) -> list[str]:
    stages = Repo.open(project).pivot_dir / "stages"
    return sorted(p.relative_to(stages).as_posix() for p in stages.rglob("*.lock"))


# --- C2: `-> None` stays Nothing: single-run backfills work, the body always runs ------
def _nothing_assets(decorate: bool) -> list[Any]:
    def body(context: dg.AssetExecutionContext) -> None:
        CALLS.append(",".join(context.partition_keys))

    body.__name__ = "ranged"
    fn = cached(body) if decorate else body
    return [asset(partitions_def=PARTS, backfill_policy=BackfillPolicy.single_run())(fn)]


def test_none_asset_range_run_as_in_dagster(
    project: Path, tmp_path: Path, dagster_instance
) -> None:
    CALLS.clear()
    ref = _run(_nothing_assets(False), _fs(tmp_path), dagster_instance, tags=RANGE)
    ref_events = len(_events(dagster_instance, ref.run_id, DagsterEventType.ASSET_MATERIALIZATION))
    assert CALLS == ["a,b,c"] and ref_events == 3

    CALLS.clear()
    assets = _nothing_assets(True)
    for _ in range(2):  # not cached: a `-> None` body's effect is outside pivot
        r = _run(assets, _pivot(project), dagster_instance, tags=RANGE)
        got = _events(dagster_instance, r.run_id, DagsterEventType.ASSET_MATERIALIZATION)
        assert len(got) == ref_events
        assert not _events(dagster_instance, r.run_id, DagsterEventType.HANDLED_OUTPUT)
    assert CALLS == ["a,b,c", "a,b,c"]
    assert _locks(project) == []  # the IO manager never ran


# --- C3: generators ---------------------------------------------------------------------
def _generator_assets(decorate: bool, yields: bool) -> list[Any]:
    wrap = cached if decorate else (lambda f: f)

    @asset(code_version="1", output_required=False)
    @wrap
    def gen() -> Iterator[Output[int]]:
        CALLS.append("gen")
        if yields:
            yield Output(5, metadata={"rows": 5})

    @asset(code_version="1")
    @wrap
    def after(gen: int) -> int:
        CALLS.append("after")
        return gen * 2

    return [gen, after]


def test_generator_yielding_output_stores_and_hits(
    project: Path, tmp_path: Path, dagster_instance
) -> None:
    ref = _run(_generator_assets(False, True), _fs(tmp_path), dagster_instance)
    assert ref.output_for_node("after") == 10

    CALLS.clear()
    assets = _generator_assets(True, True)
    first = _run(assets, _pivot(project), dagster_instance)
    second = _run(assets, _pivot(project), dagster_instance)
    assert CALLS == ["gen", "after"]
    assert hits(dagster_instance, second.run_id) == {"gen": True, "after": True}
    assert second.output_for_node("gen") == 5 and second.output_for_node("after") == 10
    assert load_stored(project, "gen") == 5 and first.output_for_node("after") == 10
    assert [_user_meta(m) for m in materializations(dagster_instance, "gen")] == [{"rows": 5}] * 3


def test_generator_yielding_nothing_skips_downstream(
    project: Path, tmp_path: Path, dagster_instance
) -> None:
    ref = _run(_generator_assets(False, False), _fs(tmp_path), dagster_instance)
    skipped = {e.step_key for e in ref.all_events if e.event_type == DagsterEventType.STEP_SKIPPED}
    assert skipped == {"after"}

    CALLS.clear()
    assets = _generator_assets(True, False)
    for _ in range(2):
        r = _run(assets, _pivot(project), dagster_instance)
        assert {
            e.step_key for e in r.all_events if e.event_type == DagsterEventType.STEP_SKIPPED
        } == skipped
    assert CALLS == ["gen", "gen"]  # nothing stored, so nothing to hit
    assert _locks(project) == []
    assert materializations(dagster_instance, "gen") == []


# --- C4: `-> Output[int]` ---------------------------------------------------------------
def _output_assets(decorate: bool) -> list[Any]:
    wrap = cached if decorate else (lambda f: f)

    @asset(code_version="1")
    @wrap
    def counted() -> Output[int]:
        CALLS.append("counted")
        return Output(3, metadata={"rows": 3}, data_version=DataVersion("mine-3"))

    return [counted]


def test_output_annotation_keeps_metadata_and_data_version(
    project: Path, tmp_path: Path, dagster_instance
) -> None:
    ref = _run(_output_assets(False), _fs(tmp_path), dagster_instance)
    assert ref.output_for_node("counted") == 3
    (ref_m,) = materializations(dagster_instance, "counted")
    assert _user_meta(ref_m)["rows"] == 3 and ref_m.tags[DATA_VERSION_TAG] == "mine-3"

    CALLS.clear()
    assets = _output_assets(True)
    first = _run(assets, _pivot(project), dagster_instance)
    second = _run(assets, _pivot(project), dagster_instance)
    assert CALLS == ["counted"]
    assert hits(dagster_instance, second.run_id) == {"counted": True}
    assert first.output_for_node("counted") == 3 and second.output_for_node("counted") == 3
    for m in materializations(dagster_instance, "counted")[1:]:
        assert _user_meta(m) == _user_meta(ref_m)
        assert m.tags[DATA_VERSION_TAG] == "mine-3"


# --- C5: asset checks and multi_asset -----------------------------------------------------
def _checked_assets(decorate: bool) -> list[Any]:
    wrap = cached if decorate else (lambda f: f)

    @asset(code_version="1", check_specs=[AssetCheckSpec("positive", asset="checked")])
    @wrap
    def checked():
        CALLS.append("checked")
        return MaterializeResult(value=4, check_results=[AssetCheckResult(passed=True)])

    return [checked]


def test_asset_checks_run_with_the_body(project: Path, tmp_path: Path, dagster_instance) -> None:
    ref = _run(_checked_assets(False), _fs(tmp_path), dagster_instance)
    ref_checks = [(c.check_name, c.passed) for c in ref.get_asset_check_evaluations()]
    assert ref_checks == [("positive", True)]

    CALLS.clear()
    assets = _checked_assets(True)
    for _ in range(2):  # checks selected: the body runs, so their results are this run's
        r = _run(assets, _pivot(project), dagster_instance)
        assert [(c.check_name, c.passed) for c in r.get_asset_check_evaluations()] == ref_checks
        assert r.output_for_node("checked") == ref.output_for_node("checked") == 4
    assert CALLS == ["checked", "checked"]
    assert load_stored(project, "checked") == 4


def test_asset_left_out_checks_hits(project: Path, dagster_instance) -> None:
    """A subsettable asset run without its checks is cached as usual."""

    @multi_asset(
        outs={"sub": dg.AssetOut(code_version="1")},
        check_specs=[AssetCheckSpec("positive", asset="sub")],
        can_subset=True,
    )
    @cached
    def sub(context: dg.AssetExecutionContext):  # yields: Dagster reads a returned result
        CALLS.append("sub")  # of a subset as a tuple
        yield MaterializeResult(value=6)
        if context.selected_asset_check_keys:
            yield AssetCheckResult(passed=True)

    CALLS.clear()
    no_checks = dg.AssetSelection.assets("sub").without_checks()
    _run([sub], _pivot(project), dagster_instance)  # with its check: the body runs
    runs = [_run([sub], _pivot(project), dagster_instance, selection=no_checks) for _ in "12"]
    # The run with the check stored its value as plain PivotIOManager does; whether the
    # first run without it can reuse that depends on the fingerprint parts, the second hits.
    assert hits(dagster_instance, runs[1].run_id) == {"sub": True}
    assert not runs[1].get_asset_check_evaluations()
    assert runs[1].asset_value("sub") == 6 and load_stored(project, "sub") == 6
    assert CALLS in (["sub"], ["sub", "sub"])


def test_multi_asset_is_cached(project: Path, tmp_path: Path, dagster_instance) -> None:
    """Values as Dagster's own IO manager gives them; the second run is a hit for both
    outputs (tests/dagster/test_multi_asset.py has the rest)."""

    def make(decorate: bool) -> Any:
        def two():
            CALLS.append("two")
            return 1, 2

        fn = cached(two) if decorate else two
        return multi_asset(outs={"left": dg.AssetOut(), "right": dg.AssetOut()})(fn)

    ref = _run([make(False)], _fs(tmp_path), dagster_instance)
    assert ref.asset_value("left") == 1 and ref.asset_value("right") == 2

    CALLS.clear()
    asset_def = make(True)
    for _ in range(2):
        r = _run([asset_def], _pivot(project), dagster_instance)
        assert (r.asset_value("left"), r.asset_value("right")) == (1, 2)
    assert CALLS == ["two"]
    assert hits(dagster_instance, r.run_id) == {"left": True, "right": True}
    assert (load_stored(project, "left"), load_stored(project, "right")) == (1, 2)


def test_multi_asset_generator_is_cached(project: Path, dagster_instance) -> None:
    @multi_asset(outs={"first": dg.AssetOut(), "second": dg.AssetOut()})
    @cached
    def both():
        CALLS.append("both")
        yield Output(1, output_name="first", metadata={"n": 1})
        yield Output(2, output_name="second")

    CALLS.clear()
    for _ in range(2):
        r = _run([both], _pivot(project), dagster_instance)
        assert (r.asset_value("first"), r.asset_value("second")) == (1, 2)
    assert CALLS == ["both"]
    assert hits(dagster_instance, r.run_id) == {"first": True, "second": True}
    assert _user_meta(materializations(dagster_instance, "first")[-1]) == {"n": 1}  # the hit


def test_multi_asset_annotated_with_results(project: Path, dagster_instance) -> None:
    """`-> tuple[MaterializeResult, MaterializeResult]` is a multi_asset's: kept as it is."""

    @multi_asset(specs=[dg.AssetSpec("up"), dg.AssetSpec("down")])
    @cached
    def pair() -> tuple[MaterializeResult, MaterializeResult]:
        CALLS.append("pair")
        return (
            MaterializeResult(asset_key="up", metadata={"n": 1}),
            MaterializeResult(asset_key="down", metadata={"n": 2}),
        )

    CALLS.clear()
    _run([pair], _pivot(project), dagster_instance)
    assert CALLS == ["pair"]
    assert [
        _user_meta(m) for k in ("up", "down") for m in materializations(dagster_instance, k)
    ] == [
        {"n": 1},
        {"n": 2},
    ]
    assert _locks(project) == []


# --- C6: MaterializeResult metadata, with and without a value ------------------------------
def test_valueless_result_stores_nothing_and_keeps_metadata(
    project: Path, tmp_path: Path, dagster_instance
) -> None:
    def make(decorate: bool) -> Any:
        def report():
            CALLS.append("report")
            return MaterializeResult(metadata={"rows": 7})

        return asset(name="report", code_version="1")(cached(report) if decorate else report)

    _run([make(False)], _fs(tmp_path), dagster_instance)
    assert not (tmp_path / "fs").exists()  # Dagster did not call the IO manager
    (ref_m,) = materializations(dagster_instance, "report")

    CALLS.clear()
    r = _run([make(True)], _pivot(project), dagster_instance)
    assert not _events(dagster_instance, r.run_id, DagsterEventType.HANDLED_OUTPUT)
    assert _locks(project) == []
    assert not list((Repo.open(project).pivot_dir / "cache").rglob("*?????????????"))
    m = materializations(dagster_instance, "report")[-1]
    assert _user_meta(m) == _user_meta(ref_m) == {"rows": 7}


def test_hit_keeps_the_users_metadata(project: Path, dagster_instance) -> None:
    @asset(code_version="1")
    @cached
    def summary() -> MaterializeResult[int]:
        CALLS.append("summary")
        return MaterializeResult(value=4, metadata={"rows": 4, "note": "computed"})

    @asset(code_version="1")
    @cached
    def loose(summary):  # unannotated: Any, as in Dagster
        CALLS.append("loose")
        return MaterializeResult(value={"s": summary}, metadata={"rows": 1})

    CALLS.clear()
    _run([summary, loose], _pivot(project), dagster_instance)
    r = _run([summary, loose], _pivot(project), dagster_instance)
    assert CALLS == ["summary", "loose"]
    assert hits(dagster_instance, r.run_id) == {"summary": True, "loose": True}
    assert r.output_for_node("loose") == {"s": 4} == load_stored(project, "loose")
    first, hit = materializations(dagster_instance, "summary")
    assert _user_meta(hit) == _user_meta(first) == {"rows": 4, "note": "computed"}
    assert hit.tags[DATA_VERSION_TAG] == first.tags[DATA_VERSION_TAG]
    assert [_user_meta(m) for m in materializations(dagster_instance, "loose")] == [{"rows": 1}] * 2


# --- C7: an unpartitioned downstream in a partitioned run ------------------------------------
@asset(partitions_def=PARTS, code_version="1")
@cached
def daily(context: dg.AssetExecutionContext) -> int:
    return ord(context.partition_key)


@asset(code_version="1", ins={"daily": AssetIn(partition_mapping=AllPartitionMapping())})
@cached
def total(daily: dict[str, int]) -> int:
    CALLS.append("total")
    return sum(daily.values())


def test_unpartitioned_downstream_hits_in_a_partitioned_run(
    project: Path, dagster_instance
) -> None:
    for pk in "abc":
        _run([daily], _pivot(project), dagster_instance, partition_key=pk)
    CALLS.clear()
    runs = [  # a run tagged with a partition (as a partitioned schedule or backfill launches)
        _run(
            [daily, total],
            _pivot(project),
            dagster_instance,
            selection=[total],
            tags={"dagster/partition": pk},
        )
        for pk in "bba"
    ]
    assert CALLS == ["total"]
    assert [hits(dagster_instance, r.run_id) for r in runs] == [
        {"total": False},
        {"total": True},
        {"total": True},
    ]
    assert load_stored(project, "total") == ord("a") + ord("b") + ord("c")
    assert "total.lock" in _locks(project)


# --- single-run backfills of value assets: one lock per partition -----------------------
def _range_assets(decorate: bool) -> list[Any]:
    wrap = cached if decorate else (lambda f: f)

    @asset(partitions_def=PARTS, backfill_policy=BackfillPolicy.single_run(), code_version="1")
    @wrap
    def per_day(context: dg.AssetExecutionContext) -> dict:
        CALLS.append(",".join(context.partition_keys))
        return {pk: f"value {pk}" for pk in context.partition_keys}

    @asset(partitions_def=PARTS, code_version="1")
    @wrap
    def reader(per_day: str) -> str:
        return per_day.upper()

    return [per_day, reader]


@pytest.mark.parametrize("decorate", [False, True])
def test_a_range_run_stores_one_result_per_partition(
    decorate: bool, project: Path, dagster_instance
) -> None:
    """Issue 14: a single-run backfill whose body returns {partition: value} writes each
    partition's lock, which single-partition runs then read; any other value fails with
    the convention named."""
    CALLS.clear()
    per_day, reader = _range_assets(decorate)
    r = _run([per_day], _pivot(project), dagster_instance, tags=RANGE)
    assert CALLS == ["a,b,c"]
    assert _locks(project) == [f"per_day/@{pk}.lock" for pk in "abc"]
    for pk in "abc":
        assert load_stored(project, "per_day", pk) == f"value {pk}"
    got = _events(dagster_instance, r.run_id, DagsterEventType.ASSET_MATERIALIZATION)
    assert len(got) == 3
    r = _run(
        [per_day.to_source_assets()[0], reader],
        _pivot(project),
        dagster_instance,
        partition_key="b",
    )
    assert r.output_for_node("reader") == "VALUE B"


def test_a_range_run_returning_one_value_names_the_convention(
    project: Path, dagster_instance
) -> None:
    @asset(partitions_def=PARTS, backfill_policy=BackfillPolicy.single_run())
    def lumped(context: dg.AssetExecutionContext) -> int:
        return 3

    r = materialize(
        [lumped],
        resources=_pivot(project),
        instance=dagster_instance,
        tags=RANGE,
        raise_on_error=False,
    )
    assert not r.success
    failure = r.get_step_failure_events()[0].step_failure_data.error
    assert "one output covers 3 partitions" in str(failure) and "dict" in str(failure)
