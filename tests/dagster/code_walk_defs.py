"""Assets whose derived code version covers helpers, run under the multiprocess executor.

Every step process re-imports this module, so each derives the code version
again: the test checks they all agree with the parent's.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetSelection, Definitions, asset, define_asset_job, multiprocess_executor

from pivot_dagster import PivotIOManager, cached, pivot_asset

OFFSET = 7


def project() -> Path:
    return Path(os.environ["PIVOT_TEST_PROJECT"])


def bump(name: str) -> None:
    with open(project() / "counter.txt", "a") as f:
        f.write(name + "\n")


def counts() -> dict[str, int]:
    path = project() / "counter.txt"
    lines = path.read_text().split() if path.exists() else []
    return {n: lines.count(n) for n in ("base", "top")}


class Scaler:
    def apply(self, x: int) -> int:
        return x * 3 + OFFSET


@pivot_asset
def base() -> int:
    bump("base")
    return helper(2)


@asset
@cached
def top(base: int) -> int:
    bump("top")
    return Scaler().apply(base)


def helper(x: int) -> int:  # below the assets: read from this module's source at import
    return x + OFFSET


def job():
    return Definitions(
        assets=[base, top],
        resources={"io_manager": PivotIOManager(project_dir=str(project()))},
        jobs=[define_asset_job("walked", AssetSelection.all())],
        executor=multiprocess_executor.configured({"max_concurrent": 2}),
    ).resolve_job_def("walked")
