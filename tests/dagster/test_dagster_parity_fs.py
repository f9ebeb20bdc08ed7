"""Dagster's `storage_tests/test_fs_io_manager.py` asset cases and `test_asset_value_loader.py`,
ported to our three setups (partition mappings: `test_dagster_parity_partitions.py`).

Dagster's assertions on values, HANDLED_OUTPUT / LOADED_INPUT counts and
upstream step keys are kept; its assertions on FilesystemIOManager's file
paths (`base_dir/<run id>/op_a/result`, `one/two/three/asset1`, the
`c|2020-04-22` back-compat multipartition file) are FilesystemIOManager's
own layout and are left out. Op jobs have no `cached` (it decorates assets),
so op-job cases are in `test_dagster_parity_ops.py`. The loader cases that swap in a
custom IO manager test Dagster's loader, not an IO manager, and are left out.
"""

from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Definitions,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    Output,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    define_asset_job,
    graph,
    op,
)

from tests.dagster.parity import Setup, UpstreamOnlyMapping, handled_outputs, loaded_inputs


# --- assets ---------------------------------------------------------------------------
def _prefixed(s: Setup, partitions_def: Any = None) -> list[Any]:
    @s.asset(key_prefix=["one", "two", "three"], partitions_def=partitions_def)
    def asset1() -> Any:
        return [1, 2, 3]

    @s.asset(
        key_prefix=["four", "five"],
        ins={"asset1": AssetIn(key_prefix=["one", "two", "three"])},
        partitions_def=partitions_def,
    )
    def asset2(asset1: Any) -> Any:
        return [*asset1, 4]

    return [asset1, asset2]


@pytest.mark.parametrize("partitioned", [False, True], ids=["unpartitioned", "daily"])
def test_assets_with_key_prefixes(io_setup: Setup, partitioned: bool) -> None:
    """`test_fs_io_manager_handles_assets` / `_partitioned`: via the implicit asset job."""
    s = io_setup
    daily = DailyPartitionsDefinition(start_date="2020-02-01") if partitioned else None
    job_def = Definitions(
        assets=_prefixed(s, daily), resources=s.resources
    ).get_implicit_global_asset_job_def()
    kw = {"partition_key": "2020-05-03"} if partitioned else {}
    for _ in range(2 if s.is_cached else 1):
        r = job_def.execute_in_process(instance=s.instance, **kw)
        assert r.success and r.output_for_node("four__five__asset2") == [1, 2, 3, 4]
        assert len(handled_outputs(r)) == 2
        (loaded,) = loaded_inputs(r)
        assert loaded.event_specific_data.upstream_step_key.endswith("asset1")


def test_partitioned_multi_asset(io_setup: Setup) -> None:
    """`test_fs_io_manager_partitioned_multi_asset`: three outputs stored; the value flows."""
    s = io_setup
    parts = StaticPartitionsDefinition(["A"])

    @s.multi_asset(
        partitions_def=parts,
        outs={
            "out_1": AssetOut(key=AssetKey("upstream_asset_1")),
            "out_2": AssetOut(key=AssetKey("upstream_asset_2")),
        },
    )
    def upstream_asset() -> tuple[Output[int], Output[int]]:
        return (Output(1, output_name="out_1"), Output(2, output_name="out_2"))

    @s.asset(partitions_def=parts)
    def downstream_asset(upstream_asset_1: int) -> int:
        return upstream_asset_1 + 1

    defs = Definitions(
        assets=[upstream_asset, downstream_asset],
        resources=s.resources,
        jobs=[define_asset_job("TheJob")],
    )
    r = defs.resolve_job_def("TheJob").execute_in_process(partition_key="A", instance=s.instance)
    assert r.success and len(handled_outputs(r)) == 3
    assert r.output_for_node("downstream_asset") == 2


def test_partitioned_graph_backed_asset(io_setup: Setup) -> None:
    """`test_fs_io_manager_partitioned_graph_backed_asset`: 4 outputs, 3 inputs, 1+3 = 4."""
    s = io_setup
    parts = StaticPartitionsDefinition(["A"])

    @s.asset(key_prefix=["the", "cool", "prefix"], partitions_def=parts)
    def one() -> int:
        return 1

    @op
    def add_1(inp: int) -> int:
        return inp + 1

    @graph
    def four(inp: int) -> int:
        return add_1(add_1(add_1(inp)))

    four_asset = AssetsDefinition.from_graph(
        four,
        keys_by_input_name={"inp": AssetKey(["the", "cool", "prefix", "one"])},
        partitions_def=parts,
    )
    r = s.materialize([one, four_asset], partition_key="A")
    assert r.success and len(handled_outputs(r)) == 4
    inputs = loaded_inputs(r)
    assert len(inputs) == 3
    assert inputs[0].event_specific_data.upstream_step_key.endswith("one")
    assert r.output_for_node("four") == 4


def test_none_assets_store_nothing(io_setup: Setup) -> None:
    """`test_fs_io_manager_none`: `-> None` assets (and `deps=`) never reach the IO manager."""
    s = io_setup

    @s.asset
    def asset1() -> None:
        pass

    @s.asset(deps=[asset1])
    def asset2() -> None:
        pass

    r = s.materialize([asset1, asset2])
    assert r.success and handled_outputs(r) == []


def test_unannotated_none_is_stored(io_setup: Setup) -> None:
    """`test_fs_io_manager_none_value_no_metadata`: an unannotated `None` is a value: one
    HANDLED_OUTPUT, no `path` entry, and it loads back as None."""
    s = io_setup

    @s.asset
    def asset1():
        pass

    @s.asset
    def asset2(asset1):
        return [asset1]

    r = s.materialize([asset1, asset2])
    assert len(handled_outputs(r)) == 2
    (stored,) = [e for e in handled_outputs(r) if e.step_key == "asset1"]
    assert "path" not in stored.event_specific_data.metadata
    assert r.output_for_node("asset2") == [None]


class _NoPartitions(UpstreamOnlyMapping):
    """Maps every downstream partition to no upstream partition at all."""

    label = "no partitions"

    def upstream_subset(self, downstream_subset: Any, upstream_partitions_def: Any) -> Any:
        return upstream_partitions_def.empty_subset()


def test_mapping_to_no_partitions_gives_none(io_setup: Setup) -> None:
    """`test_fs_io_manager_partitioned_no_partitions`: the input is None."""
    s = io_setup
    daily = DailyPartitionsDefinition(start_date="2020-02-01")
    seen: list[Any] = []

    @s.asset(partitions_def=daily)
    def asset1() -> Any: ...

    @s.asset(partitions_def=daily, ins={"asset1": AssetIn(partition_mapping=_NoPartitions())})
    def asset2(asset1: Any) -> Any:
        seen.append(asset1)

    r = s.materialize([asset1.to_source_asset(), asset2], partition_key="2020-02-01")
    assert r.success and seen == [None]


def test_partitioned_self_dependency(io_setup: Setup) -> None:
    """`test_fs_io_manager_partitioned_self_dep`: day 1 sees None, day 2 sees day 1."""
    s = io_setup
    mapping = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

    def a(a: int | None) -> int:
        return 1 if a is None else a + 1

    a_def = s.asset(
        a,
        partitions_def=DailyPartitionsDefinition(start_date="2020-01-01"),
        ins={"a": AssetIn(partition_mapping=mapping)},
    )
    assert s.materialize([a_def], partition_key="2020-01-01").output_for_node("a") == 1
    assert s.materialize([a_def], partition_key="2020-01-02").output_for_node("a") == 2


def test_multipartitions(io_setup: Setup) -> None:
    """`test_multipartitions_fs_io_manager`: two outputs stored; the value flows."""
    s = io_setup
    multi = MultiPartitionsDefinition(
        {"a": StaticPartitionsDefinition(["a", "b"]), "1": StaticPartitionsDefinition(["1", "2"])}
    )

    @s.asset(partitions_def=multi)
    def asset1() -> int:
        return 1

    @s.asset(partitions_def=multi)
    def asset2(asset1: int) -> int:
        return asset1 + 1

    key = MultiPartitionKey({"a": "a", "1": "1"})
    r = s.materialize([asset1, asset2], partition_key=key)
    assert len(handled_outputs(r)) == 2 and r.output_for_node("asset2") == 2


def test_missing_multipartition_upstream_fails(io_setup: Setup) -> None:
    """`test_backcompat_multipartitions_fs_io_manager` (its value half): a downstream of a
    never-materialized multipartition fails, a materialized one loads."""
    s = io_setup
    composite = MultiPartitionsDefinition(
        {
            "abc": StaticPartitionsDefinition(["a", "b", "c"]),
            "date": DailyPartitionsDefinition(start_date="2020-01-01"),
        }
    )

    @s.asset(partitions_def=composite)
    def multipartitioned(context: AssetExecutionContext) -> str:
        return str(context.partition_key)

    @s.asset(partitions_def=composite)
    def downstream_of_multipartitioned(multipartitioned: str) -> str:
        return multipartitioned

    present = MultiPartitionKey({"abc": "c", "date": "2020-04-22"})
    s.materialize([multipartitioned], partition_key=present)
    assets = [multipartitioned.to_source_asset(), downstream_of_multipartitioned]
    missing = MultiPartitionKey({"abc": "c", "date": "2020-04-21"})
    with pytest.raises(FileNotFoundError, match="2020-04-21"):  # pivot: MissingUpstream
        s.materialize(assets, partition_key=missing)
    r = s.materialize(assets, partition_key=present)
    assert r.output_for_node("downstream_of_multipartitioned") == str(present)


# --- test_asset_value_loader.py -------------------------------------------------------
def test_load_asset_value(io_setup: Setup) -> None:
    """`test_default_io_manager`: the stored value, with and without `python_type`."""
    s = io_setup

    @s.asset
    def asset1() -> int:
        return 5

    s.materialize([asset1])
    defs = Definitions(assets=[asset1], resources=s.resources)
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        assert loader.load_asset_value(AssetKey("asset1"), python_type=int) == 5
    assert defs.load_asset_value(AssetKey("asset1"), python_type=int, instance=s.instance) == 5


def test_load_partitioned_asset_value(io_setup: Setup) -> None:
    """`test_partitions_with_fs_io_manager`: one partition's value by key."""
    s = io_setup

    @s.asset(partitions_def=DailyPartitionsDefinition(start_date="2020-01-01"))
    def asset1(context: AssetExecutionContext) -> str:
        return f"v-{context.partition_key}"

    for key in ["2020-05-05", "2020-05-06"]:
        s.materialize([asset1], partition_key=key)
    defs = Definitions(assets=[asset1], resources=s.resources)
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        got = loader.load_asset_value(AssetKey("asset1"), partition_key="2020-05-05")
    assert got == "v-2020-05-05"
