"""Dagster's partition-mapping cases (`asset_defs_tests/partition_mapping_tests`), ported to
our three setups.

Dagster checks these with IO managers that assert on the `InputContext`
(`asset_partition_keys`, `asset_partition_key_range`); here every upstream
partition stores its own key, so the value the downstream receives shows
exactly which partitions the IO manager loaded, and that is what is asserted.
Left out: the cases about partition-mapping arithmetic alone
(`get_downstream_partitions_for_partitions`, the exported-mapping whitelist),
which never reach an IO manager.
"""

from typing import Any

import pytest
from dagster import (
    AllPartitionMapping,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    DailyPartitionsDefinition,
    IdentityPartitionMapping,
    LastPartitionMapping,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    OpExecutionContext,
    PartitionKeyRange,
    SpecificPartitionsPartitionMapping,
    StaticPartitionMapping,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    WeeklyPartitionsDefinition,
    graph,
    op,
)

from tests.dagster.parity import Setup, UpstreamOnlyMapping, handled_outputs

ABCD = StaticPartitionsDefinition(["a", "b", "c", "d"])


def _keyed(s: Setup, partitions_def: Any, **kw: Any) -> Any:
    """An upstream whose value is its own partition key."""

    @s.asset(partitions_def=partitions_def, **kw)
    def upstream(context: AssetExecutionContext) -> str:
        return str(context.partition_key)

    return upstream


def _fill(s: Setup, up: Any, keys: Any) -> None:
    for key in keys:
        s.materialize([up], partition_key=key)


def _unpartitioned_down(s: Setup, mapping: Any) -> Any:
    @s.asset(ins={"upstream": AssetIn(partition_mapping=mapping)})
    def downstream(upstream: Any) -> Any:
        return upstream

    return downstream


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (LastPartitionMapping(), "d"),
        (SpecificPartitionsPartitionMapping(["a", "b"]), {"a": "a", "b": "b"}),
        (AllPartitionMapping(), {k: k for k in "abcd"}),
    ],
    ids=["last", "specific", "all"],
)
def test_unpartitioned_downstream_in_a_partitioned_run(
    io_setup: Setup, mapping: Any, expected: Any
) -> None:
    """`test_non_partitioned_depends_on_last_partition` / `_specific_partitions` /
    `_all_partitions`: run with partition "b"; the downstream is unpartitioned and reads
    the mapped partitions (one value for Last, a dict otherwise)."""
    s = io_setup
    up = _keyed(s, ABCD)
    _fill(s, up, "acd")
    down = _unpartitioned_down(s, mapping)
    for _ in range(2 if s.is_cached else 1):  # cached: the second run hits (issue 14 C7)
        r = s.materialize([up, down], partition_key="b")
        assert r.output_for_node("downstream") == expected
        mats = r.asset_materializations_for_node("downstream")
        assert [m.partition for m in mats] == [None]
        assert [m.partition for m in r.asset_materializations_for_node("upstream")] == ["b"]


class _TrailingWindow(UpstreamOnlyMapping):
    """Each downstream partition reads itself and the one before it (as in Dagster's test)."""

    label = "trailing window"

    def upstream_subset(self, downstream_subset: Any, upstream_partitions_def: Any) -> Any:
        keys = list(downstream_subset.get_partition_keys())
        first = str(max(1, int(keys[0]) - 1))
        subset = upstream_partitions_def.empty_subset().with_partition_key_range(
            upstream_partitions_def, PartitionKeyRange(first, keys[-1])
        )
        return subset


def test_custom_partition_mapping(io_setup: Setup) -> None:
    """`test_access_partition_keys_from_context_non_identity_partition_mapping`: "2" reads
    "1" and "2", and the materializations carry partition "2"."""
    s = io_setup
    parts = StaticPartitionsDefinition(["1", "2", "3"])
    up = _keyed(s, parts)
    _fill(s, up, ["1"])

    @s.asset(partitions_def=parts, ins={"upstream": AssetIn(partition_mapping=_TrailingWindow())})
    def downstream(context: AssetExecutionContext, upstream: dict[str, str]) -> dict[str, str]:
        assert sorted(context.asset_partition_keys_for_input("upstream")) == ["1", "2"]
        return upstream

    r = s.materialize([up, downstream], partition_key="2")
    assert r.output_for_node("downstream") == {"1": "1", "2": "2"}
    assert [m.partition for m in r.asset_materializations_for_node("downstream")] == ["2"]


def test_graph_backed_identity_mapping(io_setup: Setup) -> None:
    """`test_from_graph`: graph-backed assets, same partition "a" in and out."""
    s = io_setup

    @op
    def my_op(context: OpExecutionContext) -> str:
        return context.asset_partition_key_for_output()

    @graph
    def upstream_asset() -> str:
        return my_op()

    @op
    def my_op2(context: OpExecutionContext, upstream_asset: str) -> str:
        assert context.asset_partition_key_for_input("upstream_asset") == "a"
        return upstream_asset + "!"

    @graph
    def downstream_asset(upstream_asset: str) -> str:
        return my_op2(upstream_asset)

    r = s.materialize(
        [
            AssetsDefinition.from_graph(upstream_asset, partitions_def=ABCD),
            AssetsDefinition.from_graph(
                downstream_asset,
                partitions_def=ABCD,
                partition_mappings={"upstream_asset": IdentityPartitionMapping()},
            ),
        ],
        partition_key="a",
    )
    assert r.output_for_node("downstream_asset") == "a!"


def test_daily_into_weekly(io_setup: Setup) -> None:
    """`test_partition_keys_in_range`: a week reads its seven days, in order."""
    s = io_setup
    days = [f"2022-09-{d}" for d in range(11, 18)]
    up = _keyed(s, DailyPartitionsDefinition(start_date="2022-09-11"))
    _fill(s, up, days)

    @s.asset(partitions_def=WeeklyPartitionsDefinition(start_date="2022-09-11"))
    def downstream(context: AssetExecutionContext, upstream: dict[str, str]) -> list[str]:
        assert context.asset_partition_keys_for_input("upstream") == days
        return list(upstream.values())

    r = s.materialize([up.to_source_asset(), downstream], partition_key="2022-09-11")
    assert r.output_for_node("downstream") == days


def test_prefixed_time_window_dependency(io_setup: Setup) -> None:
    """`test_dependency_resolution_partition_mapping`: key prefixes plus a (-1, 0) window."""
    s = io_setup
    daily = DailyPartitionsDefinition(start_date="2020-01-01")
    up = _keyed(s, daily, key_prefix=["staging"])
    window = TimeWindowPartitionMapping(start_offset=-1, end_offset=0)

    @s.asset(
        partitions_def=daily,
        key_prefix=["staging"],
        ins={"upstream": AssetIn(key_prefix=["staging"], partition_mapping=window)},
    )
    def downstream(upstream: dict[str, str]) -> dict[str, str]:
        return upstream

    _fill(s, up, ["2020-01-01"])
    r = s.materialize([up, downstream], partition_key="2020-01-02")
    assert r.output_for_node("staging__downstream") == {
        "2020-01-01": "2020-01-01",
        "2020-01-02": "2020-01-02",
    }


ABC_123 = MultiPartitionsDefinition(
    {
        "abc": StaticPartitionsDefinition(["a", "b", "c"]),
        "123": StaticPartitionsDefinition(["1", "2", "3"]),
    }
)


def test_multipartitions_identity_inferred(io_setup: Setup) -> None:
    """`test_multipartitions_def_partition_mapping_infer_identity`: the same key flows."""
    s = io_setup
    up = _keyed(s, ABC_123)

    @s.asset(partitions_def=ABC_123)
    def downstream(context: AssetExecutionContext, upstream: str) -> str:
        assert context.asset_partition_keys_for_input("upstream") == [context.partition_key]
        return upstream

    key = MultiPartitionKey({"abc": "a", "123": "1"})
    r = s.materialize([up, downstream], partition_key=key)
    assert r.output_for_node("downstream") == str(key)


def test_multi_to_single_dimension(io_setup: Setup) -> None:
    """`test_multipartitions_def_partition_mapping_infer_single_dim` (test_multipartition_
    partition_mapping.py): static partition "a" reads every "a|n" multipartition."""
    s = io_setup
    up = _keyed(s, ABC_123)
    keys = [MultiPartitionKey({"abc": "a", "123": n}) for n in "123"]
    _fill(s, up, keys)
    mapping = MultiToSingleDimensionPartitionMapping(partition_dimension_name="abc")

    @s.asset(
        partitions_def=StaticPartitionsDefinition(["a", "b", "c"]),
        ins={"upstream": AssetIn(partition_mapping=mapping)},
    )
    def downstream(upstream: dict[str, str]) -> list[str]:
        return sorted(upstream.values())

    r = s.materialize([up.to_source_asset(), downstream], partition_key="a")
    assert r.output_for_node("downstream") == sorted(str(k) for k in keys)


def test_static_partition_mapping(io_setup: Setup) -> None:
    """`test_single_valued_static_mapping` (test_static_partition_mapping.py)."""
    s = io_setup
    up = _keyed(s, StaticPartitionsDefinition(["p1", "p2", "q"]))
    _fill(s, up, ["p1", "p2", "q"])
    mapping = StaticPartitionMapping({"p1": "p", "p2": "p", "q": "q"})

    @s.asset(
        partitions_def=StaticPartitionsDefinition(["p", "q"]),
        ins={"upstream": AssetIn(partition_mapping=mapping)},
    )
    def downstream(upstream: Any) -> Any:
        return upstream

    r = s.materialize([up.to_source_asset(), downstream], partition_key="p")
    assert r.output_for_node("downstream") == {"p1": "p1", "p2": "p2"}
    r = s.materialize([up.to_source_asset(), downstream], partition_key="q")
    assert r.output_for_node("downstream") == "q"
    assert len(handled_outputs(r)) == 1
