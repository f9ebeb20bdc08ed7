"""The example project: its definitions load, the nightly schedule targets every
asset, and `make demo`'s script computes once then hits every asset."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_with_schedule_sensors_and_checks() -> None:
    from dagster import Definitions, build_schedule_context

    from example_project.definitions import ALL_ASSETS, INTEGRITY, defs

    Definitions.validate_loadable(defs)
    assert {s.name for s in defs.sensors} == {"pivot_push_sensor", "pivot_pull_sensor"}
    assert len(INTEGRITY) == len(ALL_ASSETS)
    schedule = defs.get_schedule_def("nightly_ci")
    assert schedule.cron_schedule == "0 2 * * *"
    ctx = build_schedule_context(scheduled_execution_time=datetime(2026, 1, 1, 2))
    requests = list(schedule.evaluate_tick(ctx).run_requests or [])
    assert len(requests) == 1


@pytest.mark.slow
def test_demo_computes_then_hits_everything(tmp_path: Path) -> None:
    env = {**os.environ, "PIVOT_PROJECT_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "example_project.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "integrity checks (re-hash of every stored object): all passed" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 6 and all("│ yes" in r for r in rows), rows
    assert (tmp_path / "reports" / "latest" / "pred_vs_actual.png").stat().st_size > 5_000
    assert "demand_model" in out.stdout
