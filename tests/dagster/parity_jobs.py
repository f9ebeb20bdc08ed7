"""Op jobs for the Dagster-parity re-execution cases (module level: `reconstructable`).

The IO manager comes from the environment (`PIVOT_PARITY_IO` = filesystem or
pivot, `PIVOT_PARITY_DIR` its folder), so one definition serves both setups.
"""

import os
from typing import Any

from dagster import FilesystemIOManager, OpExecutionContext, in_process_executor, job, op

from pivot_dagster import PivotIOManager


def _io() -> Any:
    where = os.environ["PIVOT_PARITY_DIR"]
    if os.environ["PIVOT_PARITY_IO"] == "filesystem":
        return FilesystemIOManager(base_dir=where)
    return PivotIOManager(project_dir=where)


@op
def one() -> int:
    return 1


@op(config_schema={"should_fail": bool})
def plus_two(context: OpExecutionContext, i: int) -> int:
    if context.op_config["should_fail"]:
        raise RuntimeError("asked to fail")
    return i + 2


@op
def plus_three(i: int) -> int:
    return i + 3


def define_can_fail_job() -> Any:
    """Dagster's `define_can_fail_job`: one -> plus_two (may fail) -> plus_three."""

    @job(executor_def=in_process_executor, resource_defs={"io_manager": _io()})
    def can_fail() -> None:
        plus_three(plus_two(one()))

    return can_fail
