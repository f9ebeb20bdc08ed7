"""Op jobs, dynamic outputs, missing partitions and source assets, as Dagster's own
`test_fs_io_manager.py` / `test_upath_io_manager.py` / `test_asset_value_loader.py`
expect of any IO manager (issue 14 P1-P4), with FilesystemIOManager as the reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import (
    AssetIn,
    AssetKey,
    DailyPartitionsDefinition,
    Definitions,
    FilesystemIOManager,
    ReexecutionOptions,
    SourceAsset,
    StaticPartitionMapping,
    StaticPartitionsDefinition,
    asset,
    build_input_context,
    execute_job,
    materialize,
    reconstructable,
)

from pivot_dagster import PivotIOManager
from tests.dagster import op_defs


def _managers(project: Path, tmp_path: Path) -> dict[str, object]:
    return {
        "filesystem": FilesystemIOManager(base_dir=str(tmp_path / "fs")),
        "pivot": PivotIOManager(project_dir=str(project)),
    }


@pytest.mark.parametrize("which", ["filesystem", "pivot"])
def test_dynamic_outputs_keep_one_value_per_mapping_key(
    which: str, project: Path, tmp_path: Path, dagster_instance
) -> None:
    """P1: every mapped step reads its own key's value (was {'1': 9, '2': 9, '3': 9})."""
    io = _managers(project, tmp_path)[which]
    r = op_defs.dynamic_job(io).execute_in_process(instance=dagster_instance)
    assert r.success
    assert r.output_for_node("square") == {"1": 1, "2": 4, "3": 9}
    assert r.output_for_node("gather") == [1, 4, 9]  # read back through the IO manager


def test_reexecution_reads_its_parent_runs_output(
    project: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P2 (Dagster's `test_fs_io_manager_reexecution`): re-executing run 1's `op_b` reads
    run 1's `op_a`, not the newer run 2's."""
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(project))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.chdir(root)  # the step processes import the job from here
    job = reconstructable(op_defs.two_ops)
    runs = []
    for n in (1, 2):
        config = {"ops": {"op_a": {"config": {"n": n}}}}
        with execute_job(job, instance=dagster_instance, run_config=config) as r:
            assert r.success
            assert r.output_for_node("op_b") == [n]
            runs.append(r.run_id)
    options = ReexecutionOptions(parent_run_id=runs[0], step_selection=["op_b"])
    with execute_job(job, instance=dagster_instance, reexecution_options=options) as again:
        assert again.success
        assert again.output_for_node("op_b") == [1]


@pytest.mark.parametrize("which", ["filesystem", "pivot"])
def test_allow_missing_partitions_gives_none_for_one_missing_partition(
    which: str, project: Path, tmp_path: Path, dagster_instance
) -> None:
    """P3: a mapping to one partition that was never materialized loads as None."""
    letters = StaticPartitionsDefinition(["a", "b"])

    @asset(partitions_def=letters)
    def up() -> int:
        return 1

    @asset(
        partitions_def=letters,
        ins={
            "up": AssetIn(
                partition_mapping=StaticPartitionMapping({"a": "b", "b": "a"}),
                metadata={"allow_missing_partitions": True},
            )
        },
    )
    def down(up: int | None) -> str:
        return "none" if up is None else f"got {up}"

    io = _managers(project, tmp_path)[which]
    first = materialize([up], partition_key="a", resources={"io_manager": io})
    assert first.success
    r = materialize(
        [up.to_source_assets()[0], down], partition_key="a", resources={"io_manager": io}
    )
    assert r.success and r.output_for_node("down") == "none"  # reads partition b: missing
    r = materialize(
        [up.to_source_assets()[0], down], partition_key="b", resources={"io_manager": io}
    )
    assert r.success and r.output_for_node("down") == "got 1"


def test_missing_single_partition_without_the_flag_still_fails(project: Path) -> None:
    daily = DailyPartitionsDefinition(start_date="2024-01-01")

    @asset(partitions_def=daily)
    def src() -> int:
        return 1

    @asset(partitions_def=daily)
    def use(src: int) -> int:
        return src

    io = PivotIOManager(project_dir=str(project))
    r = materialize(
        [src.to_source_assets()[0], use],
        partition_key="2024-01-02",
        resources={"io_manager": io},
        raise_on_error=False,
    )
    assert not r.success


@pytest.mark.parametrize("which", ["filesystem", "pivot"])
def test_load_asset_value_of_a_source_asset(
    which: str, project: Path, tmp_path: Path, dagster_instance
) -> None:
    """P4: `Definitions.load_asset_value` of a SourceAsset another code location wrote."""
    io = _managers(project, tmp_path)[which]

    @asset(key="ext")
    def ext() -> dict:
        return {"rows": 3}

    assert materialize([ext], resources={"io_manager": io}, instance=dagster_instance).success
    defs = Definitions(assets=[SourceAsset(AssetKey("ext"))], resources={"io_manager": io})
    assert defs.load_asset_value("ext", instance=dagster_instance) == {"rows": 3}


def test_load_input_on_a_built_context_without_a_type(project: Path) -> None:
    """P4: a hand-built InputContext (no dagster_type, no upstream output name)."""

    @asset(key="plain")
    def plain() -> list:
        return [1, 2]

    io = PivotIOManager(project_dir=str(project))
    assert materialize([plain], resources={"io_manager": io}).success
    assert io.load_input(build_input_context(asset_key=AssetKey("plain"))) == [1, 2]
