"""Dagster's `definitions_tests/test_materialize_result.py`, ported to our three setups
(the asset-check decorator's cases are in `test_dagster_parity_checks.py`).

Each case keeps Dagster's assertions on values, metadata, tags, check results
and errors; the cached setup runs every case twice where a second run can hit,
and asserts the hit gives the same. Skipped: direct invocation
(`ret(build_asset_context())` never reaches an IO manager) and the custom
in-memory IO manager variants (the IO manager under test replaces them).
"""

from collections.abc import Generator
from typing import Any

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    AssetSpec,
    DagsterInvariantViolationError,
    DagsterStepOutputNotFoundError,
    DagsterTypeCheckDidNotPass,
    MaterializeResult,
    StaticPartitionsDefinition,
)
from dagster._core.definitions.utils import NoValueSentinel
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tests.dagster.parity import Setup, handled_outputs

COLORS = StaticPartitionsDefinition(["red", "blue", "yellow"])


def _mats(r: Any, node: str) -> list[Any]:
    assert r.success
    return r.asset_materializations_for_node(node)


def _twice(s: Setup, assets: list[Any], **kw: Any) -> list[Any]:
    """Run once, and again in the cached setup (its second run may hit); both results."""
    return [s.materialize(assets, **kw) for _ in range(2 if s.is_cached else 1)]


def test_metadata_and_tags(io_setup: Setup) -> None:
    """`test_materialize_result_asset`: metadata and tags land on the materialization."""
    s = io_setup

    @s.asset
    def ret_untyped(context: AssetExecutionContext):
        return MaterializeResult(metadata={"one": 1}, tags={"foo": "bar"})

    for r in _twice(s, [ret_untyped]):
        mats = _mats(r, "ret_untyped")
        assert len(mats) == 1 and mats[0].metadata["one"].value == 1
        assert mats[0].tags["foo"] == "bar"


def test_key_mismatch_fails(io_setup: Setup) -> None:
    s = io_setup

    @s.asset
    def ret_mismatch(context: AssetExecutionContext):
        return MaterializeResult(asset_key="random", metadata={"one": 1})

    with pytest.raises(DagsterInvariantViolationError, match="Asset key random not found"):
        s.materialize([ret_mismatch])


def test_check_results_recorded(io_setup: Setup) -> None:
    """`test_return_materialization_with_asset_checks`: the check execution SUCCEEDED."""
    s = io_setup

    @s.asset(check_specs=[AssetCheckSpec(name="foo_check", asset="ret_checks")])
    def ret_checks(context: AssetExecutionContext):
        return MaterializeResult(
            check_results=[
                AssetCheckResult(check_name="foo_check", metadata={"one": 1}, passed=True)
            ]
        )

    for _ in _twice(s, [ret_checks]):
        execs = s.instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(asset_key=ret_checks.key, name="foo_check"), limit=1
        )
        assert len(execs) == 1
        assert execs[0].status == AssetCheckExecutionRecordStatus.SUCCEEDED


def test_annotated_result_skips_the_io_manager(io_setup: Setup) -> None:
    """`test_materialize_result_output_typing`: `-> MaterializeResult` is Nothing-typed;
    no HANDLED_OUTPUT, the metadata is there."""
    s = io_setup

    @s.asset
    def asset_with_type_annotation() -> MaterializeResult:
        return MaterializeResult(metadata={"foo": "bar"})

    for r in _twice(s, [asset_with_type_annotation]):
        mats = _mats(r, "asset_with_type_annotation")
        assert len(mats) == 1 and mats[0].metadata["foo"].value == "bar"
        assert handled_outputs(r) == []


def test_generator_result(io_setup: Setup) -> None:
    """`test_materialize_result_generators`: one yielded result, its metadata."""
    s = io_setup

    @s.asset
    def generator_asset() -> Generator[MaterializeResult, None, None]:
        yield MaterializeResult(metadata={"foo": "bar"})

    for r in _twice(s, [generator_asset]):
        mats = _mats(r, "generator_asset")
        assert len(mats) == 1 and mats[0].metadata["foo"].value == "bar"


def test_partitioned_result(io_setup: Setup) -> None:
    """`test_materialize_result_with_partitions`."""
    s = io_setup

    @s.asset(partitions_def=COLORS)
    def partitioned_asset(context: AssetExecutionContext) -> MaterializeResult:
        return MaterializeResult(metadata={"key": context.partition_key})

    for r in _twice(s, [partitioned_asset], partition_key="red"):
        mats = _mats(r, "partitioned_asset")
        assert len(mats) == 1 and mats[0].metadata["key"].text == "red"


@pytest.mark.parametrize("annotation", ["none", "bare", "typed"])
def test_result_value(io_setup: Setup, annotation: str) -> None:
    """`test_materialize_result_value` / `_annotated_no_type` / `_annotated_explicit_type`:
    `MaterializeResult(value=...)` stores the value; `asset_value` returns it."""
    s = io_setup

    def asset_with_value():
        return MaterializeResult(value="hello")

    ann = {"none": None, "bare": MaterializeResult, "typed": MaterializeResult[str]}[annotation]
    if ann is not None:
        asset_with_value.__annotations__["return"] = ann
    a = s.asset(asset_with_value)
    for r in _twice(s, [a]):
        assert r.asset_value("asset_with_value") == "hello"
    assert len(handled_outputs(r)) == 1


def test_explicit_any_without_value_stores_nothing(io_setup: Setup) -> None:
    """`test_materialize_result_value_explicit_any_no_value`: no value, no IO manager."""
    s = io_setup

    @s.asset
    def explicit_any() -> Any:
        return MaterializeResult()

    @s.asset
    def explicit_result_any() -> MaterializeResult[Any]:
        return MaterializeResult()

    for r in _twice(s, [explicit_any, explicit_result_any]):
        assert r.success and handled_outputs(r) == []


@pytest.mark.parametrize("returned", ["wrong", "missing"])
def test_result_value_wrong_type_fails(io_setup: Setup, returned: str) -> None:
    """`test_materialize_result_value_annotated_incorrect_type` / `_no_value`."""
    s = io_setup

    @s.asset
    def asset_with_value() -> MaterializeResult[int]:
        return MaterializeResult(value="hello") if returned == "wrong" else MaterializeResult()

    with pytest.raises(DagsterTypeCheckDidNotPass):
        s.materialize([asset_with_value])


@pytest.mark.parametrize("dep", ["asset", "key"])
def test_value_through_deps(io_setup: Setup, dep: str) -> None:
    """`test_materialize_result_with_default_io_manager` / `_with_asset_key_ref`: a `deps=`
    upstream named as a parameter is loaded through the IO manager."""
    s = io_setup

    @s.asset
    def up():
        return MaterializeResult(value="hello")

    @s.asset(deps=[up if dep == "asset" else "up"])
    def down(up: str):
        return MaterializeResult(value=up + " world")

    for r in _twice(s, [up, down]):
        assert r.asset_value("down") == "hello world"


def test_value_type_changes_downstream(io_setup: Setup) -> None:
    """`test_materialize_result_with_custom_io_manager_type_mutate`: an int stays an int."""
    s = io_setup

    @s.asset
    def up():
        return MaterializeResult(value=1)

    @s.asset(deps=[up])
    def down(up: int):
        return MaterializeResult(value=up + 1)

    for r in _twice(s, [up, down]):
        assert r.asset_value("down") == 2


def test_multi_asset_results(io_setup: Setup) -> None:
    """`test_multi_asset` / `test_return_materialization_multi_asset`: returned or yielded,
    each output's metadata."""
    s = io_setup

    @s.multi_asset(outs={"one": AssetOut(), "two": AssetOut()})
    def returned():
        return (
            MaterializeResult(asset_key="one", metadata={"one": 1}),
            MaterializeResult(asset_key="two", metadata={"two": 2}),
        )

    @s.multi_asset(specs=[AssetSpec("three"), AssetSpec("four")])
    def yielded():
        yield MaterializeResult(asset_key="three", metadata={"three": 3})
        yield MaterializeResult(asset_key="four", metadata={"four": 4})

    for node, keys in [(returned, ["one", "two"]), (yielded, ["three", "four"])]:
        mats = _mats(s.materialize([node]), node.op.name)
        assert [list(m.metadata) for m in mats] == [[k] for k in keys]


def test_multi_asset_errors(io_setup: Setup) -> None:
    """Dagster's errors for a missing output, a result without a key, and a list."""
    s = io_setup

    @s.multi_asset(outs={"one": AssetOut(), "two": AssetOut()})
    def missing():
        yield MaterializeResult(asset_key="one", metadata={"one": 1})

    @s.multi_asset(outs={"one": AssetOut(), "two": AssetOut()})
    def no_key():
        yield MaterializeResult(metadata={"one": 1})
        yield MaterializeResult(metadata={"two": 2})

    @s.multi_asset(outs={"one": AssetOut(), "two": AssetOut()})
    def ret_list():
        return [MaterializeResult(asset_key="one"), MaterializeResult(asset_key="two")]

    with pytest.raises(DagsterStepOutputNotFoundError, match='non-optional output "two"'):
        s.materialize([missing])
    with pytest.raises(DagsterInvariantViolationError, match="did not include asset_key"):
        s.materialize([no_key])
    with pytest.raises(DagsterInvariantViolationError, match="return a tuple"):
        s.materialize([ret_list])


def test_iterator_values(io_setup: Setup) -> None:
    """`test_materialize_result_iterator_unannotated_no_value` / `_unannotated_value`: spec
    outputs are Nothing, so no value is stored and a value fails the type check. (The
    `Iterator[MaterializeResult[str]]` value cases are refused as Nothing by Dagster 1.13
    itself, under every IO manager, so they are left out.)"""
    s = io_setup

    @s.multi_asset(specs=[AssetSpec("one"), AssetSpec("two")])
    def no_values():
        yield MaterializeResult(asset_key="one")
        yield MaterializeResult(asset_key="two")

    @s.multi_asset(specs=[AssetSpec("five"), AssetSpec("six")])
    def values():
        yield MaterializeResult(asset_key="five", value="hello")
        yield MaterializeResult(asset_key="six", value="world")

    r = s.materialize([no_values])
    assert (r.asset_value("one"), r.asset_value("two")) == (NoValueSentinel,) * 2
    assert handled_outputs(r) == []
    with pytest.raises(DagsterTypeCheckDidNotPass):
        s.materialize([values])


def test_value_through_a_custom_io_manager_key(io_setup: Setup) -> None:
    """`test_materialize_result_with_custom_io_manager_custom_key`: the manager under
    another resource key stores and loads (and `cached` finds it there: a hit)."""
    s = io_setup

    @s.asset(io_manager_key="io_whatever_manager")
    def up():
        return MaterializeResult(value="hello")

    @s.asset(deps=[up], io_manager_key="io_whatever_manager")
    def down(up: str):
        return MaterializeResult(value=up + " world")

    for r in _twice(s, [up, down], resources={"io_whatever_manager": s.io_manager}):
        assert r.asset_value("down") == "hello world"
    if s.is_cached:
        assert r.asset_materializations_for_node("down")[0].metadata["pivot/cache_hit"].value
