"""The rest of Dagster's `storage_tests/test_io_manager.py` (its start, fan-in, different
managers and re-execute-subset-of-subset, is in `test_dagster_parity_ops.py`), run on
FilesystemIOManager and PivotIOManager; the asset case also runs under `cached`.

Ported (a value or a behaviour goes through the IO manager): `test_fs_io_manager_reexecution`,
`test_reexecute_subset_of_subset_with_composite`, `test_mem_io_manager_execution`,
`test_mem_io_managers_result_for_op`, `test_hardcoded_io_manager`, `test_partition_key`,
`test_error_boundary_with_gen` / `test_handle_output_exception_raised`,
`test_metadata_dynamic_outputs`, `test_nothing_output_nothing_input`,
`test_nothing_output_something_input`, `test_instance_set_on_asset_loader`.

Skipped, because they test a custom IO manager class's own mechanics (swapping in
PivotIOManager would drop what they assert): `test_io_manager_with_config`,
`_with_optional_config`, `_with_required_resource_keys`, `test_io_manager_resources_on_context`
(output/input config schemas and resources of a user's `@io_manager`); `test_configured`
(`IOManagerDefinition.configured`); `test_multi_materialization`, `test_context_logging_*`
(events and metadata a custom `handle_output` yields or logs); `test_asset_key`,
`test_instance_set_on_input_context` (asserts on the context a custom manager receives);
`test_get_output_context_with_resources`, `test_output_identifier_dynamic_memoization`
(Dagster internals, no IO manager runs); `test_telemetry_*` (a flag on the class);
`test_step_subset_with_custom_paths` and `test_can_reexecute` (`custom_path_fs_io_manager`'s
own path config; a plan property).
"""

from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DailyPartitionsDefinition,
    Definitions,
    DynamicOut,
    DynamicOutput,
    In,
    IOManagerDefinition,
    Nothing,
    Out,
    ReexecutionOptions,
    build_init_resource_context,
    build_input_context,
    build_output_context,
    execute_job,
    job,
    op,
    reconstructable,
)

from tests.dagster import parity_io_jobs
from tests.dagster.parity import Setup, handled_outputs, loaded_inputs

OP_SETUPS = pytest.mark.parametrize("io_setup", ["filesystem", "pivot"], indirect=True)


def _env(s: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point `parity_jobs._io` at this setup's manager and folder."""
    monkeypatch.setenv("PIVOT_PARITY_IO", s.name)
    where = tmp_path / "fs" if s.name == "filesystem" else Path.cwd()
    monkeypatch.setenv("PIVOT_PARITY_DIR", str(where))


def _manager(s: Setup) -> Any:
    """The IOManager object itself (FilesystemIOManager is a factory of one)."""
    if s.name == "filesystem":
        return s.io_manager.create_io_manager(build_init_resource_context())
    return s.io_manager


class _Unstorable:
    """A value whose pickling raises a plain ValueError (not a Dagster error)."""

    def __reduce__(self) -> Any:
        raise ValueError("cannot store this value")


# --- re-execution ---------------------------------------------------------------------
@OP_SETUPS
def test_reexecute_one_step(
    io_setup: Setup, tmp_path: Path, dagster_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`test_fs_io_manager_reexecution`: re-executing op_b alone loads op_a's stored output
    (one LOADED_INPUT from op_a) and runs only op_b."""
    _env(io_setup, tmp_path, monkeypatch)
    recon = reconstructable(parity_io_jobs.define_two_op_job)
    with execute_job(recon, dagster_instance) as first:
        assert first.success
    options = ReexecutionOptions(parent_run_id=first.run_id, step_selection=["op_b"])
    with execute_job(recon, dagster_instance, reexecution_options=options) as again:
        assert again.success and again.output_for_node("op_b") == 1
        (loaded,) = again.filter_events(lambda e: e.is_loaded_input)
        assert loaded.event_specific_data.upstream_step_key == "op_a"
        assert [e.step_key for e in again.filter_events(lambda e: e.is_step_success)] == ["op_b"]


@OP_SETUPS
def test_reexecute_subset_of_subset_with_composite(
    io_setup: Setup, tmp_path: Path, dagster_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`test_reexecute_subset_of_subset_with_composite`: plus_three re-executed three times
    from the first run reads the graph's output (3) each time."""
    _env(io_setup, tmp_path, monkeypatch)
    recon = reconstructable(parity_io_jobs.define_composite_job)
    with execute_job(recon, dagster_instance) as first:
        assert first.success and first.output_for_node("plus_three") == 6
    for _ in range(3):
        options = ReexecutionOptions(first.run_id, step_selection=["plus_three"])
        with execute_job(recon, dagster_instance, reexecution_options=options) as again:
            assert again.success and again.output_for_node("plus_three") == 6
            ran = [e.step_key for e in again.filter_events(lambda e: e.is_step_success)]
            assert ran == ["plus_three"]


# --- direct use and op jobs -----------------------------------------------------------
@OP_SETUPS
def test_handle_then_load_by_context(io_setup: Setup) -> None:
    """`test_mem_io_manager_execution`: `handle_output` on a built output context, then
    `load_input` on an input context with that upstream output, gives the value back."""
    out = build_output_context(step_key="step_key", name="output_name")
    manager = _manager(io_setup)
    manager.handle_output(out, 1)
    assert manager.load_input(build_input_context(upstream_output=out)) == 1


@OP_SETUPS
@pytest.mark.parametrize("hardcoded", [False, True], ids=["resource", "hardcoded"])
def test_result_for_op(io_setup: Setup, hardcoded: bool) -> None:
    """`test_mem_io_managers_result_for_op` / `test_hardcoded_io_manager`: `output_for_node`
    reads each op's value back through the manager, also through `hardcoded_io_manager`."""
    s = io_setup

    @op
    def one() -> int:
        return 1

    @op
    def add_one(x: int) -> int:
        return x + 1

    manager = IOManagerDefinition.hardcoded_io_manager(_manager(s)) if hardcoded else s.io_manager

    @job(resource_defs={"io_manager": manager})
    def my_job() -> None:
        add_one(one())

    r = my_job.execute_in_process(instance=s.instance)
    assert r.success and r.output_for_node("one") == 1 and r.output_for_node("add_one") == 2
    assert len(handled_outputs(r)) == 2


@OP_SETUPS
def test_partitioned_op_job(io_setup: Setup) -> None:
    """`test_partition_key`: a partitioned op job; the value stored for the partition is
    the one the downstream op loads."""
    s = io_setup
    seen: list[Any] = []

    @op
    def my_op(context) -> str:
        return f"v-{context.partition_key}"

    @op
    def my_op2(context, input1: str) -> None:
        seen.append((context.partition_key, input1))

    @job(
        partitions_def=DailyPartitionsDefinition(start_date="2020-01-01"),
        resource_defs=s.resources,
    )
    def my_job() -> None:
        my_op2(my_op())

    for key in ["2020-01-01", "2020-01-02"]:
        assert my_job.execute_in_process(partition_key=key, instance=s.instance).success
    assert seen == [("2020-01-01", "v-2020-01-01"), ("2020-01-02", "v-2020-01-02")]


@OP_SETUPS
def test_handle_output_error_is_reported(io_setup: Setup) -> None:
    """`test_error_boundary_with_gen` / `test_handle_output_exception_raised`: a value the
    manager cannot store (its pickling raises ValueError) fails the step with
    DagsterExecutionHandleOutputError."""
    s = io_setup

    @op
    def basic_op() -> Any:
        return _Unstorable()

    @job(resource_defs=s.resources)
    def single_op_job() -> None:
        basic_op()

    r = single_op_job.execute_in_process(raise_on_error=False, instance=s.instance)
    assert not r.success
    (failure,) = [e for e in r.all_node_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.event_specific_data.error.cls_name == "DagsterExecutionHandleOutputError"


@OP_SETUPS
def test_dynamic_outputs_with_metadata(io_setup: Setup) -> None:
    """`test_metadata_dynamic_outputs`: each DynamicOutput (with its own metadata) is
    stored under its mapping key, and each mapped step gets its own value."""
    s = io_setup
    seen: dict[str, int] = {}

    @op(out=DynamicOut())
    def the_op() -> Any:
        yield DynamicOutput(1, mapping_key="one", metadata={"one": "blah"})
        yield DynamicOutput(2, mapping_key="two", metadata={"two": "blah"})

    @op
    def record(context, x: int) -> int:
        seen[context.get_mapping_key()] = x
        return x * 10

    @job(resource_defs=s.resources)
    def the_job() -> None:
        the_op().map(record)

    r = the_job.execute_in_process(instance=s.instance)
    assert r.success and seen == {"one": 1, "two": 2}
    assert r.output_for_node("record") == {"one": 10, "two": 20}


@OP_SETUPS
def test_nothing_output_nothing_input(io_setup: Setup) -> None:
    """`test_nothing_output_nothing_input`: Out(Nothing) into In(Nothing) runs, and nothing
    is loaded (Dagster's manager never had `load_input` called)."""
    s = io_setup

    @op(out=Out(Nothing))
    def op1() -> None: ...

    @op(ins={"input1": In(Nothing)})
    def op2() -> None: ...

    @job(resource_defs=s.resources)
    def job1() -> None:
        op2(op1())

    r = job1.execute_in_process(instance=s.instance)
    assert r.success and loaded_inputs(r) == []


@OP_SETUPS
def test_nothing_output_something_input(io_setup: Setup) -> None:
    """`test_nothing_output_something_input`: an Out(Nothing) wired to an ordinary input
    is loaded through the manager (Dagster counts one `load_input`); a storing manager
    stored nothing for it, so op2 fails loading it (FileNotFoundError; pivot:
    MissingUpstream) and never runs."""
    s = io_setup
    seen: list[Any] = []

    @op(out=Out(Nothing))
    def op1() -> None: ...

    @op
    def op2(_input1: Any) -> None:
        seen.append(_input1)

    @job(resource_defs=s.resources)
    def job1() -> None:
        op2(op1())

    with pytest.raises(FileNotFoundError, match="op1"):
        job1.execute_in_process(instance=s.instance)
    assert seen == []


# --- assets ---------------------------------------------------------------------------
def test_load_asset_value_after_selection(io_setup: Setup) -> None:
    """`test_instance_set_on_asset_loader`: a run of `an_asset` alone runs no `load_input`
    (it has no inputs); `load_asset_value` then reads it; once `another_asset` ran, it
    loads too (1 + 1); under `cached`, also after a run where both hit."""
    s = io_setup

    @s.asset
    def an_asset() -> int:
        return 1

    @s.asset
    def another_asset(an_asset: int) -> int:
        return an_asset + 1

    defs = Definitions(assets=[an_asset, another_asset], resources=s.resources)
    job_def = defs.get_implicit_global_asset_job_def()
    r = job_def.execute_in_process(asset_selection=[AssetKey("an_asset")], instance=s.instance)
    assert r.success and loaded_inputs(r) == []
    assert defs.load_asset_value("an_asset", instance=s.instance) == 1
    with pytest.raises(FileNotFoundError):  # never materialized (pivot: MissingUpstream)
        defs.load_asset_value("another_asset", instance=s.instance)
    r = job_def.execute_in_process(instance=s.instance)
    assert r.success and len(loaded_inputs(r)) == 1
    assert defs.load_asset_value("another_asset", instance=s.instance) == 2
    if s.is_cached:  # a second full run hits both; the values read back are unchanged
        r = job_def.execute_in_process(instance=s.instance)
        for name in ("an_asset", "another_asset"):
            (mat,) = r.asset_materializations_for_node(name)
            assert mat.metadata["pivot/cache_hit"].value is True
        assert r.output_for_node("another_asset") == 2
        assert defs.load_asset_value("another_asset", instance=s.instance) == 2
