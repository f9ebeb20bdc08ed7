"""Op-job cases from Dagster's `storage_tests/test_fs_io_manager.py` and
`test_io_manager.py`, run on FilesystemIOManager and PivotIOManager (`cached`
decorates assets, so op jobs have no third setup).

Kept: Dagster's assertions on values, HANDLED_OUTPUT / LOADED_INPUT events,
fan-in lists and re-execution results. Left out: the output-config /
`custom_path_fs_io_manager` cases (they test those managers' own config
schemas), `test_can_reexecute` (a plan property) and the re-execution of
run 1 after run 2 (`test_io_manager_ops.py`, issue 14 P2).
"""

from pathlib import Path
from typing import Any

import pytest
from dagster import (
    In,
    InMemoryIOManager,
    Nothing,
    Out,
    ReexecutionOptions,
    execute_job,
    job,
    op,
    reconstructable,
)

from tests.dagster import parity_jobs
from tests.dagster.parity import Setup, differs, handled_outputs, loaded_inputs

OP_SETUPS = pytest.mark.parametrize("io_setup", ["filesystem", "pivot"], indirect=True)


# --- op jobs --------------------------------------------------------------------------
@OP_SETUPS
def test_op_job_outputs(io_setup: Setup) -> None:
    """`test_fs_io_manager` / `_base_dir`: two outputs stored, one input loaded from op_a."""
    s = io_setup

    @op
    def op_a(_context) -> Any:
        return [1, 2, 3]

    @op
    def op_b(_context, _df: Any) -> Any:
        assert _df == [1, 2, 3]
        return 1

    @job(resource_defs=s.resources)
    def asset_job() -> None:
        op_b(op_a())

    r = asset_job.execute_in_process(instance=s.instance)
    assert r.success and r.output_for_node("op_a") == [1, 2, 3] and r.output_for_node("op_b") == 1
    assert len(handled_outputs(r)) == 2
    (loaded,) = loaded_inputs(r)
    assert loaded.event_specific_data.upstream_step_key == "op_a"


@OP_SETUPS
def test_op_nothing_outputs(io_setup: Setup) -> None:
    """`test_fs_io_manager_ops_none`: `-> None` ops and Nothing inputs store nothing."""
    s = io_setup

    @op
    def op1() -> None:
        pass

    @op(ins={"abc": In(Nothing)})
    def op2() -> None:
        pass

    @job(resource_defs=s.resources)
    def job1() -> None:
        op2(op1())

    r = job1.execute_in_process(instance=s.instance)
    assert r.success and handled_outputs(r) == []


@OP_SETUPS
@pytest.mark.parametrize("kind", ["local_func", "lambda"])
def test_unpicklable_output_fails(
    io_setup: Setup, kind: str, request: pytest.FixtureRequest
) -> None:
    """`test_fs_io_manager_unpicklable`: Dagster's "Object ... is not picklable" error."""
    s = io_setup
    differs(
        request,
        s,
        "pivot names the value it cannot store with its own UnserializableValue (the step"
        " fails as with Dagster, with a different exception type)",
        where=("pivot",),
    )
    from dagster import DagsterInvariantViolationError

    @op
    def unpicklable() -> Any:
        def local_func() -> int:
            return 1

        return local_func if kind == "local_func" else (lambda x: x * x)

    @op
    def op_b(_i: Any) -> int:
        return 1

    @job(resource_defs=s.resources)
    def the_job() -> None:
        op_b(unpicklable())

    with pytest.raises(DagsterInvariantViolationError, match=r"Object .* is not picklable"):
        the_job.execute_in_process(instance=s.instance)


@OP_SETUPS
@pytest.mark.parametrize("skipped", [False, True], ids=["fan_in", "fan_in_skip"])
def test_fan_in(io_setup: Setup, skipped: bool) -> None:
    """`test_fan_in` / `test_fan_in_skip`: a fanned-in input is the list of the upstream
    values, without the output that was never yielded."""
    s = io_setup
    seen: list[Any] = []

    @op
    def input_op1() -> int:
        return 1

    @op
    def input_op2() -> int:
        return 2

    @op(out={"skip": Out(is_required=False)})
    def skip() -> Any:
        return
        yield

    @op
    def op1(input1: list) -> None:
        seen.append(input1)

    @job(resource_defs=s.resources)
    def my_job() -> None:
        op1(input1=[input_op1(), skip() if skipped else input_op2()])

    assert my_job.execute_in_process(instance=s.instance).success
    assert seen == ([[1]] if skipped else [[1, 2]])


@OP_SETUPS
def test_output_with_its_own_io_manager_key(io_setup: Setup) -> None:
    """`test_different_io_managers`: `Out(io_manager_key=...)` uses that manager; the
    default one (in memory here) does the rest."""
    s = io_setup
    seen: list[int] = []

    @op(out=Out(io_manager_key="my_io_manager"))
    def op_a() -> int:
        return 1

    @op
    def op_b(a: int) -> None:
        seen.append(a)

    @job(resource_defs={"my_io_manager": s.io_manager, "io_manager": InMemoryIOManager()})
    def my_job() -> None:
        op_b(op_a())

    r = my_job.execute_in_process(instance=s.instance)
    assert r.success and seen == [1]
    assert [e.event_specific_data.manager_key for e in handled_outputs(r)] == ["my_io_manager"]


@OP_SETUPS
def test_reexecute_subset_of_subset(
    io_setup: Setup, tmp_path: Path, dagster_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`test_reexecute_subset_of_subset`: re-execute from failure, then re-execute the
    re-execution (twice): each time `plus_two` reads `one`'s value from the first run."""
    monkeypatch.setenv("PIVOT_PARITY_IO", io_setup.name)
    where = tmp_path / "fs" if io_setup.name == "filesystem" else Path.cwd()
    monkeypatch.setenv("PIVOT_PARITY_DIR", str(where))
    recon = reconstructable(parity_jobs.define_can_fail_job)

    def config(fail: bool) -> dict[str, Any]:
        return {"ops": {"plus_two": {"config": {"should_fail": fail}}}}

    with execute_job(recon, dagster_instance, run_config=config(True)) as first:
        assert not first.success
    options = ReexecutionOptions.from_failure(first.run_id, dagster_instance)
    parent = first.run_id
    for i in range(3):
        with execute_job(
            recon, dagster_instance, run_config=config(False), reexecution_options=options
        ) as again:
            assert again.success and again.output_for_node("plus_two") == 3
            assert again.output_for_node("plus_three") == 6
            executed = {e.step_key for e in again.all_events if e.is_step_success}
            assert "one" not in executed, f"re-execution {i} ran `one` again"
        parent = again.run_id
        options = ReexecutionOptions(parent, step_selection=["plus_two*"])
