"""Dagster's `storage_tests/test_asset_value_loader.py`, run on our three setups
(`test_default_io_manager` and `test_partitions_with_fs_io_manager` are in
`test_dagster_parity_fs.py`).

In Dagster's cases the custom IO manager's `load_input` returns a constant; here the
value is materialized first and the loader must return what was stored. Kept:
Dagster's assertions on the loaded values, through `get_asset_value_loader` and
`load_asset_value`, with `python_type`, `partition_key` and `resource_config`.

Skipped: the resource set-up and tear-down bookkeeping of `test_single_asset` /
`test_source_asset` (when a user's `@io_manager` context manager is entered and left),
`test_resource_dependencies_and_config`, `test_io_manager_resource_with_config` and
`test_nested_resource_deps` (resources a user's `@io_manager` requires), and
`test_partition_key` (asserts on the input context a custom manager receives; the value
half is `test_load_partitioned_asset_value` in `test_dagster_parity_fs.py`).
"""

from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    Definitions,
    FilesystemIOManager,
    SourceAsset,
)

from pivot_dagster import PivotIOManager
from tests.dagster.parity import Setup


def _materialize(s: Setup, assets: list[Any], **kw: Any) -> None:
    """Materialize; under `cached` a second time, which must hit and give the same
    `output_for_node` value, so the loader afterwards reads what a hit left (issue 14 C1)."""
    values: list[Any] = []
    for run in range(2 if s.is_cached else 1):
        r = s.materialize(assets, **kw)
        values.append([r.output_for_node(a.op.name) for a in assets])
        for a in assets:
            (mat,) = r.asset_materializations_for_node(a.op.name)
            if s.is_cached:
                assert mat.metadata["pivot/cache_hit"].value is (run == 1)
    assert values[-1] == values[0]


def test_single_asset(io_setup: Setup) -> None:
    """`test_single_asset`: an asset on its own `io_manager_key`, with metadata: the
    loader and `load_asset_value` give the stored value as `python_type=int`."""
    s = io_setup

    @s.asset(io_manager_key="my_io_manager", metadata={"a": "b"})
    def asset1() -> int:
        return 5

    resources = {"my_io_manager": s.io_manager}
    _materialize(s, [asset1], resources=resources)
    defs = Definitions(assets=[asset1], resources=resources)
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        assert loader.load_asset_value(AssetKey("asset1"), python_type=int) == 5
    assert defs.load_asset_value(AssetKey("asset1"), python_type=int, instance=s.instance) == 5


def test_source_asset(io_setup: Setup) -> None:
    """`test_source_asset`: a SourceAsset on the key of a stored asset loads its value."""
    s = io_setup

    @s.asset(io_manager_key="my_io_manager")
    def asset1() -> int:
        return 5

    resources = {"my_io_manager": s.io_manager}
    _materialize(s, [asset1], resources=resources)
    source = SourceAsset("asset1", io_manager_key="my_io_manager", metadata={"a": "b"})
    defs = Definitions(assets=[source], resources=resources)
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        assert loader.load_asset_value(AssetKey("asset1"), python_type=int) == 5
    assert defs.load_asset_value(AssetKey("asset1"), python_type=int, instance=s.instance) == 5


def test_two_io_managers(io_setup: Setup, tmp_path: Path) -> None:
    """`test_two_io_managers_same_resource_dep`: two assets on two manager keys; each
    key loads its own asset's value."""
    s = io_setup
    second: Any = (
        FilesystemIOManager(base_dir=str(tmp_path / "fs2"))
        if s.name == "filesystem"
        else PivotIOManager(project_dir=str(Path.cwd()))
    )

    @s.asset(io_manager_key="io_manager1")
    def asset1() -> str:
        return "asset1_5"

    @s.asset(io_manager_key="io_manager2")
    def asset2() -> str:
        return "asset2_5"

    resources = {"io_manager1": s.io_manager, "io_manager2": second}
    _materialize(s, [asset1, asset2], resources=resources)
    defs = Definitions(assets=[asset1, asset2], resources=resources)
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        assert loader.load_asset_value(AssetKey("asset1")) == "asset1_5"
        assert loader.load_asset_value(AssetKey("asset2")) == "asset2_5"


def test_asset_bound_io_manager(io_setup: Setup) -> None:
    """`test_partitions_with_fs_io_manager` as Dagster writes it: the manager given to
    the asset itself (`io_manager_def=`), no resources on the Definitions."""
    s = io_setup

    @s.asset(
        partitions_def=DailyPartitionsDefinition(start_date="2020-01-01"),
        io_manager_def=s.io_manager,
    )
    def asset1() -> int:
        return 5

    _materialize(s, [asset1], partition_key="2020-05-05", resources={})
    defs = Definitions(assets=[asset1])
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        assert loader.load_asset_value(AssetKey("asset1"), partition_key="2020-05-05") == 5


def test_io_manager_config_at_load(io_setup: Setup, tmp_path: Path) -> None:
    """`test_io_manager_with_config`: the manager configured at launch; the loader's
    `resource_config` says where the value is."""
    s = io_setup

    @s.asset
    def asset1() -> int:
        return 5

    _materialize(s, [asset1])
    if s.name == "filesystem":
        launch: Any = FilesystemIOManager.configure_at_launch()
        config = {"base_dir": str(tmp_path / "fs")}
    else:
        launch = PivotIOManager.configure_at_launch()
        config = {"project_dir": str(Path.cwd())}
    defs = Definitions(assets=[asset1], resources={"io_manager": launch})
    resource_config = {"io_manager": {"config": config}}
    with defs.get_asset_value_loader(instance=s.instance) as loader:
        got = loader.load_asset_value(AssetKey("asset1"), resource_config=resource_config)
    assert got == 5
