"""A 3-asset graph (raw -> doubled -> total) used by several tests, also in subprocesses.

Everything that varies comes from the environment, because the multiprocess
executor re-imports this module in every step process: PIVOT_TEST_PROJECT (the
project folder, where each body appends its name to counter.txt),
PIVOT_TEST_MID_CV (doubled's code version) and PIVOT_TEST_FACTOR (its logic).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from dagster import (
    AssetSelection,
    Config,
    Definitions,
    asset,
    define_asset_job,
    multiprocess_executor,
)

from pivot_dagster import PivotIOManager, cached


def project() -> Path:
    return Path(os.environ["PIVOT_TEST_PROJECT"])


def bump(name: str) -> None:
    with open(project() / "counter.txt", "a") as f:
        f.write(name + "\n")


def counts() -> dict[str, int]:
    path = project() / "counter.txt"
    lines = path.read_text().split() if path.exists() else []
    return {n: lines.count(n) for n in ("raw", "doubled", "total")}


class RawConfig(Config):
    n: int = 3


@asset(code_version="1")
@cached
def raw(config: RawConfig) -> list:
    bump("raw")
    return list(range(config.n))


@asset(code_version=os.environ.get("PIVOT_TEST_MID_CV", "1"))
@cached
def doubled(raw: list) -> pd.DataFrame:
    bump("doubled")
    factor = int(os.environ.get("PIVOT_TEST_FACTOR", "2"))
    return pd.DataFrame({"x": [v * factor for v in raw]})


@asset(code_version="1")
@cached
def total(doubled: pd.DataFrame) -> int:
    bump("total")
    return int(doubled["x"].sum())


ASSETS = [raw, doubled, total]


def io_manager() -> PivotIOManager:
    return PivotIOManager(project_dir=str(project()))


def defs() -> Definitions:
    return Definitions(
        assets=ASSETS,
        resources={"io_manager": io_manager()},
        jobs=[define_asset_job("all_assets", AssetSelection.all())],
        executor=multiprocess_executor.configured({"max_concurrent": 3}),
    )


def multiprocess_job():
    return defs().resolve_job_def("all_assets")
