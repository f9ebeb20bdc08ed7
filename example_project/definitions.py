"""The example's Definitions: assets on PivotIOManager, a nightly schedule.

`PIVOT_PROJECT_DIR` chooses where `.pivot/` lives (default: this folder).
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
)

from example_project import assets
from example_project.settings import PROJECT_DIR, has_remote
from pivot_dagster import PivotIOManager, pivot_pull_sensor, pivot_push_sensor
from pivot_dagster.checks import pivot_integrity_checks

ALL_ASSETS = [
    assets.raw_sales,
    assets.sales,
    assets.features,
    assets.demand_model,
    assets.evaluation,
    assets.report,
]

INTEGRITY = pivot_integrity_checks(ALL_ASSETS)

everything = define_asset_job("everything", selection=AssetSelection.all())

nightly_ci = ScheduleDefinition(
    name="nightly_ci",
    cron_schedule="0 2 * * *",
    target=AssetSelection.all(),
    description="Materialize everything nightly; unchanged assets are cache hits.",
)

# Push and pull only make sense with a remote: they start RUNNING when
# .pivot/config.yaml names one (`pivot remote add origin s3://... --default`).
SENSOR_STATUS = DefaultSensorStatus.RUNNING if has_remote() else DefaultSensorStatus.STOPPED

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=INTEGRITY,
    jobs=[everything],
    schedules=[nightly_ci],
    sensors=[
        pivot_push_sensor(default_status=SENSOR_STATUS),
        pivot_pull_sensor(default_status=SENSOR_STATUS),
    ],
    resources={"io_manager": PivotIOManager(project_dir=str(PROJECT_DIR))},
)
