"""An overlapping asset graph for tests/e2e/test_concurrency.py (re-imported by step processes).

PIVOT_TEST_PROJECT names the shared project; PIVOT_TEST_SELECTION picks which
assets a run materializes, so concurrent runs overlap without being identical.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

from pivot_dagster import PivotIOManager, pivot_asset


@pivot_asset
def base() -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(50_000), "y": np.arange(50_000) % 7})


@pivot_asset
def squares(base: pd.DataFrame) -> pd.DataFrame:
    return base.assign(x2=base["x"] ** 2)


@pivot_asset
def matrix(base: pd.DataFrame) -> np.ndarray:
    return base[["x", "y"]].to_numpy().reshape(-1, 100)


@pivot_asset
def blob() -> bytes:
    return bytes(range(256)) * 4096


@pivot_asset
def summary(squares: pd.DataFrame, matrix: np.ndarray) -> dict:
    return {"sum": int(squares["x2"].sum()), "m": float(matrix.mean())}


ASSETS = [base, squares, matrix, blob, summary]
SELECTIONS = {
    "all": [a.key.path[0] for a in ASSETS],
    "left": ["base", "squares", "matrix", "summary"],
    "right": ["base", "matrix", "blob"],
    "mid": ["base", "squares", "blob"],
}


def job():
    names = SELECTIONS[os.environ.get("PIVOT_TEST_SELECTION", "all")]
    return Definitions(
        assets=ASSETS,
        resources={"io_manager": PivotIOManager(project_dir=os.environ["PIVOT_TEST_PROJECT"])},
        jobs=[define_asset_job("pick", AssetSelection.assets(*names))],
        executor=multiprocess_executor.configured({"max_concurrent": 2}),
    ).resolve_job_def("pick")


def run() -> None:
    """One run in this process (own DAGSTER_HOME); prints {asset: hash} as JSON."""
    import json

    from dagster import DagsterEventType, DagsterInstance, execute_job, reconstructable

    instance = DagsterInstance.get()
    with execute_job(reconstructable(job), instance=instance) as result:
        hashes = {}
        for rec in instance.get_records_for_run(
            result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records:
            m = rec.event_log_entry.asset_materialization
            hashes[m.asset_key.to_user_string()] = m.metadata["pivot/hash"].value
        failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        print(json.dumps({"success": result.success, "hashes": hashes, "failures": failures}))


if __name__ == "__main__":
    run()
