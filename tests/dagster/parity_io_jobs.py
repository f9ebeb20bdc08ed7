"""Op jobs for the re-execution cases of `test_dagster_parity_io_manager.py`
(module level, so `reconstructable` can find them; the IO manager comes from
the environment as in `parity_jobs.py`)."""

from typing import Any

from dagster import graph, in_process_executor, job, op

from tests.dagster.parity_jobs import _io


@op
def op_a() -> list:
    return [1, 2, 3]


@op
def op_b(df: list) -> int:
    assert df == [1, 2, 3]
    return 1


def define_two_op_job() -> Any:
    """Dagster's `define_fs_io_manager_job`: op_a -> op_b."""

    @job(executor_def=in_process_executor, resource_defs={"io_manager": _io()})
    def two_ops() -> None:
        op_b(op_a())

    return two_ops


@op
def one() -> int:
    return 1


@op
def plus_two(i: int) -> int:
    return i + 2


@op
def plus_three(i: int) -> int:
    return i + 3


@graph
def one_plus_two() -> Any:
    return plus_two(one())


def define_composite_job() -> Any:
    """Dagster's `define_composite_job`: a graph (one -> plus_two) feeding plus_three."""

    @job(executor_def=in_process_executor, resource_defs={"io_manager": _io()})
    def composite() -> None:
        plus_three(one_plus_two())

    return composite
