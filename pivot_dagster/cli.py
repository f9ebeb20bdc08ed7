"""`pivot run`: materialize Dagster assets in-process and print ran / cache hit / failed;
`pivot why ASSET`: whether a run would reuse its stored result, and why not (`why`).

Plugins of the `pivot` CLI: pyproject.toml's `pivot.commands` entry points name
`register` and `register_why`, which pivot_store's CLI calls only when their command is asked
for, so `pivot --help` and the store commands never import dagster.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import typer

from pivot_store.errors import PivotError


class DefinitionsNotFound(PivotError):
    """No Dagster Definitions could be loaded from the module or workspace."""


def register(app: typer.Typer) -> None:
    app.command()(run)


def register_why(app: typer.Typer) -> None:
    app.command()(why)


def run(
    assets: list[str] = typer.Argument(None, help="Asset keys to materialize (a/b); all if none."),
    module: str | None = typer.Option(None, "-m", "--module", help="Module holding `defs`."),
    workspace: Path | None = typer.Option(None, "-w", "--workspace", help="workspace.yaml."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Recompute the assets (all, or those named) even when a stored result matches "
        "(run tag pivot/refresh).",
    ),
) -> None:
    """Materialize assets in this process; cached assets whose fingerprint matches are skipped."""
    from dagster import AssetKey, DagsterInstance, materialize

    from pivot_dagster.explain import REFRESH_TAG
    from pivot_store.cli.output import table

    defs = load_definitions(module, workspace)
    all_assets = list(defs.assets or [])
    selection = [AssetKey.from_user_string(a) for a in assets] if assets else None
    instance = DagsterInstance.get() if _has_home() else DagsterInstance.ephemeral()
    tags = {REFRESH_TAG: ",".join(assets) if assets else "*"} if force else None
    result = materialize(
        all_assets,
        resources=dict(defs.resources or {}),
        selection=selection,
        instance=instance,
        raise_on_error=False,
        tags=tags,
    )
    rows = summarize(result, all_assets, selection)
    table("pivot run", ["asset", "status", "hash"], rows)
    if not result.success:
        raise typer.Exit(1)


def why(
    asset: str = typer.Argument(..., help="Asset key (a/b)."),
    partition: str | None = typer.Option(None, "-p", "--partition", help="Partition key."),
    module: str | None = typer.Option(None, "-m", "--module", help="Module holding `defs`."),
    workspace: Path | None = typer.Option(None, "-w", "--workspace", help="workspace.yaml."),
) -> None:
    """Would a run reuse ASSET's stored result, and if not, why not; runs and fetches nothing."""
    from dagster import DagsterInstance

    from pivot_dagster import why as why_mod

    defs = load_definitions(module, workspace)
    instance = DagsterInstance.get() if _has_home() else None
    for line in why_mod.report(defs, asset, partition, instance):
        print(line)


def summarize(result: Any, all_assets: list[Any], selection: list[Any] | None) -> list[list[str]]:
    """One row per selected asset key: ran / cache hit / failed / not run."""
    from pivot_dagster import handoff  # dagster is loaded by now; `--help` stays light

    done: dict[str, tuple[str, str]] = {}
    for ev in result.get_asset_materialization_events():
        m = ev.materialization
        meta = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        status = "cache hit" if meta.get(handoff.CACHE_HIT_KEY) else "ran"
        done[m.asset_key.to_user_string()] = (status, str(meta.get(handoff.HASH_KEY, "")))
    failed_steps = {ev.step_key for ev in result.get_step_failure_events()}
    keys: list[tuple[str, str | None]] = []
    for ad in all_assets:
        for key in getattr(ad, "keys", []):
            if selection is None or key in selection:
                keys.append(
                    (key.to_user_string(), getattr(ad, "node_def", None) and ad.node_def.name)
                )
    rows = []
    for key, step in sorted(keys):
        status, h = done.get(key, ("failed" if step in failed_steps else "not run", ""))
        rows.append([key, status, h])
    return rows


def _has_home() -> bool:
    import os

    return bool(os.environ.get("DAGSTER_HOME"))


def load_definitions(module: str | None, workspace: Path | None) -> Any:
    """The Definitions from `-m MODULE`, `-w workspace.yaml`, or ./workspace.yaml."""
    if module:
        sys.path.insert(0, str(Path.cwd()))
        return _find_defs(importlib.import_module(module), module)
    workspace = workspace or Path("workspace.yaml")
    if not workspace.exists():
        raise DefinitionsNotFound(
            "no -m MODULE given and no workspace.yaml here", "pass -m your.module or -w FILE"
        )
    import yaml

    data = yaml.safe_load(workspace.read_text()) or {}
    base = workspace.resolve().parent
    for entry in data.get("load_from", []):
        if "python_file" in entry:
            spec = entry["python_file"]
            spec = {"relative_path": spec} if isinstance(spec, str) else spec
            wd = base / spec.get("working_directory", ".")
            sys.path.insert(0, str(wd))
            path = base / spec["relative_path"]
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            mod = importlib.util.module_from_spec(mod_spec)
            sys.modules[path.stem] = mod
            mod_spec.loader.exec_module(mod)
            return _find_defs(mod, str(path))
        if "python_module" in entry:
            spec = entry["python_module"]
            spec = {"module_name": spec} if isinstance(spec, str) else spec
            sys.path.insert(0, str(base / spec.get("working_directory", ".")))
            return _find_defs(importlib.import_module(spec["module_name"]), spec["module_name"])
    raise DefinitionsNotFound(f"{workspace} has no python_file or python_module entry")


def _find_defs(mod: Any, where: str) -> Any:
    from dagster import Definitions

    found = getattr(mod, "defs", None)
    if not isinstance(found, Definitions):
        found = next((v for v in vars(mod).values() if isinstance(v, Definitions)), None)
    if found is None:
        raise DefinitionsNotFound(
            f"{where} defines no dagster.Definitions", "add `defs = Definitions(...)`"
        )
    return found
