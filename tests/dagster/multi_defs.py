"""A cached multi_asset and two downstreams, for the multiprocess executor (each step in
its own process, which re-imports this module): PIVOT_TEST_PROJECT is the project, where
each body appends its name to counter.txt."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dagster import (
    AssetOut,
    AssetSelection,
    Definitions,
    asset,
    define_asset_job,
    multi_asset,
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
    return {n: lines.count(n) for n in sorted(set(lines))}


@multi_asset(outs={"evens": AssetOut(code_version="1"), "odds": AssetOut(code_version="1")})
@cached
def parity():
    bump("parity")
    stamp = time.time_ns()  # not deterministic: a mixed pair would show
    return [0, 2, stamp], [1, 3, stamp]


@asset(code_version="1")
@cached
def evens_sum(evens: list) -> int:
    bump("evens_sum")
    return sum(evens[:2])


@asset(code_version="1")
@cached
def odds_sum(odds: list) -> int:
    bump("odds_sum")
    return sum(odds[:2])


def multiprocess_job():
    return Definitions(
        assets=[parity, evens_sum, odds_sum],
        resources={"io_manager": PivotIOManager(project_dir=str(project()))},
        jobs=[define_asset_job("all_assets", AssetSelection.all())],
        executor=multiprocess_executor.configured({"max_concurrent": 3}),
    ).resolve_job_def("all_assets")
