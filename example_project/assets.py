"""The example's assets: a daily-partitioned source, cleaning, features, a model,
its evaluation and a report folder.

Some assets pin `code_version`; the others get one derived from their source and
the helpers they reach (`data.fit`), so editing a comment changes nothing and
editing logic, theirs or a helper's, re-runs them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, DailyPartitionsDefinition

from example_project import data
from example_project.settings import REPORT_DIR
from pivot_dagster import pivot_asset

DAYS = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-09")


@pivot_asset(partitions_def=DAYS, code_version="1", group_name="sales")
def raw_sales(context: AssetExecutionContext) -> pd.DataFrame:
    """One day of point-of-sale rows, generated from a seed (stands in for an export)."""
    return data.generate_day(context.partition_key)


@pivot_asset(group_name="sales")
def sales(raw_sales: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every day together, without bad scanner reads and rows lacking a price."""
    return data.clean(raw_sales)


@pivot_asset(code_version="1", group_name="model")
def features(sales: pd.DataFrame) -> pd.DataFrame:
    """Numeric model inputs per sale."""
    return data.build_features(sales)


@pivot_asset(group_name="model")
def demand_model(features: pd.DataFrame) -> dict:
    """Least-squares coefficients, trained on all but the last two days."""
    train, _ = data.split(features)
    return data.fit(train)


@pivot_asset(code_version="1", group_name="model")
def evaluation(demand_model: dict, features: pd.DataFrame) -> dict:
    """Error on the two held-out days."""
    _, test = data.split(features)
    return data.evaluate(demand_model, test)


# The declared path is where a result from the remote may be checked out before this
# project has report's lock (a fresh clone): docs/security.md.
@pivot_asset(
    code_version="1", group_name="report", metadata={"pivot/workspace_path": "reports/latest"}
)
def report(demand_model: dict, evaluation: dict, features: pd.DataFrame) -> Path:
    """A folder with a PNG plot and a markdown summary, stored as a tree."""
    _, test = data.split(features)
    data.write_report(REPORT_DIR, demand_model, evaluation, test)
    return REPORT_DIR
