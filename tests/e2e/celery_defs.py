"""The graph the Celery test runs: loaded by file path in the orchestrator and each worker.

Steps are routed to worker queues by the `dagster-celery/queue` tag, so a
downstream runs on another worker than its upstream. `PIVOT_TEST_PRICES_VERSION`
is `prices`' code version (the workers are restarted to change it, as a deploy
would); every body appends `<asset> <worker dir>` to `$PIVOT_TEST_CALLS`.
`python celery_defs.py` runs the job once for partition d1 of `daily` (the
orchestrator, in its own process).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster import (
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
    execute_job,
)
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster_celery import celery_executor

from pivot_dagster import PivotIOManager, cached

DAYS = StaticPartitionsDefinition(["d1", "d2"])
VERSION = os.environ.get("PIVOT_TEST_PRICES_VERSION", "1")


def _called(name: str) -> None:
    with open(os.environ["PIVOT_TEST_CALLS"], "a") as f:
        f.write(f"{name} {Path.cwd().name}\n")


def _on(queue: str) -> dict[str, str]:
    return {"dagster-celery/queue": queue}


@asset(code_version="1", op_tags=_on("w1"))
@cached
def raw() -> list:
    _called("raw")
    return [1, 2, 3]


@asset(code_version=VERSION, op_tags=_on("w2"))
@cached
def prices(raw: list) -> list:
    _called("prices")
    return [x * int(VERSION) * 10 for x in raw]


@asset(code_version="1", op_tags=_on("w1"))
@cached
def report(prices: list) -> dict:
    _called("report")
    return {"total": sum(prices)}


@asset(code_version="1", op_tags=_on("w2"))
@cached
def counts(raw: list) -> int:
    _called("counts")
    return len(raw)


@asset(code_version="1", partitions_def=DAYS, op_tags=_on("w1"))
@cached
def daily(context, prices: list) -> str:
    _called("daily")
    return f"{context.partition_key}:{sum(prices)}"


@asset(op_tags=_on("w1"))
def shown(prices: list) -> str:
    """Not `cached`: its input is loaded by the IO manager on worker 1."""
    _called("shown")
    return f"max={max(prices)}"


ASSETS = [raw, prices, report, counts, daily, shown]
defs = Definitions(
    assets=ASSETS,
    jobs=[define_asset_job("all", selection=ASSETS)],
    resources={"io_manager": PivotIOManager(project_dir=".", remote_first=True)},
    executor=celery_executor,
)
all_job = defs.resolve_job_def("all")


def main() -> int:
    broker = os.environ["PIVOT_TEST_BROKER"]
    config = {"execution": {"config": {"broker": broker, "backend": broker}}}
    with DagsterInstance.get() as instance:
        job = ReconstructableJob.for_file(__file__, "all_job")
        tags = {"dagster/partition": "d1"}  # `daily`'s partition; the others have none
        with execute_job(job, instance=instance, run_config=config, tags=tags) as result:
            return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
