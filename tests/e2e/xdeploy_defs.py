"""One code location, deployed twice: the definitions and a small driver for the e2e test.

Parameterised by environment, so "same code, different deployment" is a new
process with another project dir and DAGSTER_HOME:

- XDEPLOY_PROJECT: the project folder (holds `.pivot/`, config names the remote)
- XDEPLOY_COUNTER: a folder where every asset body that runs appends a line
- XDEPLOY_VARIANT: "features-v2" swaps in a changed `features` body

`python -m tests.e2e.xdeploy_defs ACTION...` (from the repo root) runs actions in order and prints
one JSON object per action (materialize, push, pull, values, events, steps).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    StaticPartitionsDefinition,
    asset,
    build_sensor_context,
    materialize,
)

from pivot_dagster import PivotIOManager, cached, pivot_asset, pivot_pull_sensor, pivot_push_sensor

PROJECT = Path(os.environ.get("XDEPLOY_PROJECT", ".")).resolve()
VARIANT = os.environ.get("XDEPLOY_VARIANT", "")
PARTS = StaticPartitionsDefinition(["p1", "p2"])


def project_dir() -> Path:
    """Read when a body runs: a module constant the bodies read would be part of their
    derived code version, and the two deployments' folders differ."""
    return Path(os.environ.get("XDEPLOY_PROJECT", ".")).resolve()


def ran(name: str) -> None:
    """Proof a body ran: one line per call in the counter folder."""
    counter = Path(os.environ.get("XDEPLOY_COUNTER", project_dir() / "counter"))
    counter.mkdir(parents=True, exist_ok=True)
    with open(counter / name, "a") as f:
        f.write("ran\n")


@asset(partitions_def=PARTS, code_version="1")
@cached
def raw(context) -> list:
    ran("raw")
    base = 10 if context.partition_key == "p1" else 20
    return [{"day": i, "sales": base + i} for i in range(5)]


@pivot_asset
def table(raw: dict) -> pd.DataFrame:
    ran("table")
    rows = [dict(r, part=p) for p, part in sorted(raw.items()) for r in part]
    return pd.DataFrame(rows)


@pivot_asset
def summary(table: pd.DataFrame) -> int:
    ran("summary")
    return int(table["sales"].sum())


if VARIANT == "features-v2":

    @pivot_asset
    def features(table: pd.DataFrame) -> dict:
        ran("features")
        return {"mean": float(table["sales"].mean()), "max": int(table["sales"].max())}

else:

    @pivot_asset
    def features(table: pd.DataFrame) -> dict:
        ran("features")
        return {"mean": float(table["sales"].mean())}


@pivot_asset(metadata={"pivot/workspace_path": "reports"})  # where B may check it out
def report(features: dict) -> Path:
    ran("report")
    out = project_dir() / "reports"
    out.mkdir(parents=True, exist_ok=True)
    (out / "features.json").write_text(json.dumps(features, sort_keys=True))
    (out / "README.txt").write_text("a folder output\n")
    return out


ASSETS = [raw, table, summary, features, report]
RESOURCES = {"io_manager": PivotIOManager(project_dir=str(PROJECT))}
push_sensor = pivot_push_sensor()
pull_sensor = pivot_pull_sensor()
defs = Definitions(assets=ASSETS, resources=RESOURCES, sensors=[push_sensor, pull_sensor])


# --- driver ---------------------------------------------------------------------------
def do_materialize(instance: DagsterInstance) -> dict[str, Any]:
    runs = []
    for pk in PARTS.get_partition_keys():
        r = materialize(
            ASSETS, resources=RESOURCES, instance=instance, selection=[raw], partition_key=pk
        )
        runs.append(r.success)
    rest = [table, summary, features, report]
    runs.append(materialize(ASSETS, resources=RESOURCES, instance=instance, selection=rest).success)
    return {"success": all(runs)}


def do_push(instance: DagsterInstance, cursor: str | None) -> dict[str, Any]:
    ctx = build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    res = push_sensor(ctx)
    return {"cursor": res.cursor, "skip": res.skip_reason.skip_message if res.skip_reason else ""}


def do_pull(instance: DagsterInstance) -> dict[str, Any]:
    ctx = build_sensor_context(instance=instance, definitions=defs)
    res = pull_sensor(ctx)
    for ev in res.asset_events:  # what the daemon does with a sensor's asset events
        instance.report_runless_asset_event(ev)
    return {
        "events": [
            {
                "key": ev.asset_key.to_user_string(),
                "partition": ev.partition,
                "hash": ev.metadata["pivot/hash"].value,
                "source": ev.metadata["pivot/source"].value,
                "tags": dict(ev.tags or {}),
            }
            for ev in res.asset_events
        ]
    }


def do_values() -> dict[str, Any]:
    from tests.dagster.helpers import load_stored

    out: dict[str, Any] = {}
    for pk in ("p1", "p2"):
        out[f"raw@{pk}"] = load_stored(PROJECT, "raw", pk)
    out["table"] = load_stored(PROJECT, "table").to_dict(orient="records")
    out["summary"] = load_stored(PROJECT, "summary")
    out["features"] = load_stored(PROJECT, "features")
    folder = load_stored(PROJECT, "report")
    out["report"] = {p.name: p.read_text() for p in sorted(folder.iterdir())}
    return out


def do_events(instance: DagsterInstance) -> dict[str, Any]:
    out = {}
    for key in ("raw", "table", "summary", "features", "report"):
        recs = instance.fetch_materializations(AssetKey(key), limit=10).records
        out[key] = [
            {
                "run_id": r.run_id,
                "partition": r.asset_materialization.partition,
                "hash": r.asset_materialization.metadata["pivot/hash"].value,
                "data_version": (r.asset_materialization.tags or {}).get("dagster/data_version"),
            }
            for r in recs
        ]
    return out


def do_steps(instance: DagsterInstance) -> dict[str, Any]:
    """Every run's step starts (step key -> time) and pivot's prefetch lines, oldest run first."""
    from dagster import DagsterEventType

    runs = []
    for run in reversed(instance.get_runs()):
        logs = instance.all_logs(run.run_id)
        starts = {
            e.step_key: e.timestamp
            for e in logs
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_START
        }
        notes = [e.user_message for e in logs if "pivot: prefetch" in (e.user_message or "")]
        runs.append({"run_id": run.run_id, "starts": starts, "prefetch": notes})
    return {"runs": runs}


def main(actions: list[str]) -> None:
    instance = DagsterInstance.get()  # DAGSTER_HOME names this deployment's instance
    cursor = None
    for action in actions:
        if action == "materialize":
            out = do_materialize(instance)
        elif action == "push":
            out = do_push(instance, cursor)
            cursor = out["cursor"]
        elif action == "pull":
            out = do_pull(instance)
        elif action == "values":
            out = do_values()
        elif action == "events":
            out = do_events(instance)
        elif action == "steps":
            out = do_steps(instance)
        else:
            raise SystemExit(f"unknown action {action}")
        print("XDEPLOY " + json.dumps({"action": action, **out}, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
