"""`pivot run` (pivot_dagster.cli, a CLI plugin): materialize in-process, table of
ran / cache hit / failed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DEFS = """
from dagster import Definitions, asset
from pivot_dagster import PivotIOManager, cached

@asset(code_version="1")
@cached
def one() -> int:
    return 1

@asset(code_version="1")
@cached
def two(one: int) -> int:
    return one + 1

defs = Definitions(assets=[one, two], resources={"io_manager": PivotIOManager(project_dir=".")})
"""


def _pivot(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "pivot_store.cli.app", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


def test_run_then_hit(tmp_path: Path) -> None:
    (tmp_path / "my_defs.py").write_text(DEFS)
    first = _pivot(tmp_path, "run", "-m", "my_defs")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count(" ran ") == 2
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file: {relative_path: my_defs.py, working_directory: .}\n"
    )
    second = _pivot(tmp_path, "run", "two")
    assert second.returncode == 0, second.stderr[-2000:]
    rows = [line for line in second.stdout.splitlines() if "│" in line]
    assert len(rows) == 1 and "two" in rows[0] and "cache hit" in rows[0]


def test_missing_definitions_is_one_line(tmp_path: Path) -> None:
    proc = _pivot(tmp_path, "run")
    assert proc.returncode == 1
    assert "error: no -m MODULE given and no workspace.yaml here" in proc.stderr


def test_run_is_a_plugin_listed_by_help_and_loaded_on_demand(tmp_path: Path) -> None:
    top = _pivot(tmp_path, "--help")
    assert top.returncode == 0 and "run" in top.stdout, top.stderr
    own = _pivot(tmp_path, "run", "--help")
    assert own.returncode == 0, own.stderr
    assert "--module" in own.stdout and "--workspace" in own.stdout
    assert "warning" not in own.stderr


def _rows(stdout: str) -> dict[str, str]:
    """asset -> status, from `pivot run`'s table."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) >= 2 and cells[0] != "asset":
            out[cells[0]] = cells[1]
    return out


def test_force_recomputes_the_named_assets_once(tmp_path: Path) -> None:
    (tmp_path / "my_defs.py").write_text(DEFS)
    assert _pivot(tmp_path, "run", "-m", "my_defs").returncode == 0
    forced = _pivot(tmp_path, "run", "-m", "my_defs", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert _rows(forced.stdout) == {"one": "ran", "two": "ran"}
    one = _pivot(tmp_path, "run", "-m", "my_defs", "--force", "one")
    assert _rows(one.stdout) == {"one": "ran"}
    after = _pivot(tmp_path, "run", "-m", "my_defs")
    assert _rows(after.stdout) == {"one": "cache hit", "two": "cache hit"}


WHY_DEFS = """
from dagster import Config, Definitions, asset
from pivot_dagster import PivotIOManager, cached

class Cfg(Config):
    lr: float = {lr}

@asset(code_version="1")
@cached
def fit(config: Cfg) -> float:
    return config.lr

@asset(code_version="1")
@cached
def plain_up() -> int:
    return 1

defs = Definitions(assets=[fit, plain_up], resources={{"io_manager": PivotIOManager()}})
"""


def test_why_names_a_changed_config_key_and_runs_nothing(tmp_path: Path) -> None:
    (tmp_path / "why_defs.py").write_text(WHY_DEFS.format(lr=0.1))
    before = _pivot(tmp_path, "why", "-m", "why_defs", "fit")
    assert before.returncode == 0, before.stderr[-2000:]
    assert before.stdout.splitlines()[:2] == [
        "fit: cache miss: a run would compute it",
        "  no earlier result",
    ]
    assert not (tmp_path / ".pivot").exists()  # nothing run, nothing created
    assert _pivot(tmp_path, "run", "-m", "why_defs").returncode == 0
    same = _pivot(tmp_path, "why", "-m", "why_defs", "fit")
    assert same.stdout.startswith("fit: cache hit from local lock (deployment "), same.stdout
    (tmp_path / "why_defs.py").write_text(WHY_DEFS.format(lr=0.2))
    changed = _pivot(tmp_path, "why", "-m", "why_defs", "fit")
    lines = changed.stdout.splitlines()
    assert lines[:2] == [
        "fit: cache miss: a run would compute it",
        "  config key `lr` 0.1 -> 0.2",
    ]
    assert "note: config is the asset's defaults; a run's own run config may differ" in lines
    unknown = _pivot(tmp_path, "why", "-m", "why_defs", "nope")
    assert unknown.returncode == 1
    assert "error: no asset 'nope' in the definitions" in unknown.stderr


PART_DEFS = """
from dagster import Definitions, StaticPartitionsDefinition, asset
from pivot_dagster import PivotIOManager, cached

@asset(partitions_def=StaticPartitionsDefinition(["a", "b"]), code_version="1")
@cached
def per_part(context) -> str:
    return context.partition_key

defs = Definitions(assets=[per_part], resources={"io_manager": PivotIOManager()})
"""


def test_why_partition(tmp_path: Path) -> None:
    (tmp_path / "part_defs.py").write_text(PART_DEFS)
    code = "from dagster import materialize; import part_defs as d\n" + (
        "assert materialize(d.defs.assets, resources=d.defs.resources, partition_key='a').success"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    env.pop("DAGSTER_HOME", None)
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True)
    assert ran.returncode == 0, ran.stderr[-2000:]
    new = _pivot(tmp_path, "why", "-m", "part_defs", "per_part", "--partition", "b")
    assert new.stdout.splitlines()[:2] == [
        "per_part [b]: cache miss: a run would compute it",
        "  new partition b",
    ], new.stdout + new.stderr
    done = _pivot(tmp_path, "why", "-m", "part_defs", "per_part", "-p", "a")
    assert done.stdout.startswith("per_part [a]: cache hit from local lock"), done.stdout
    bare = _pivot(tmp_path, "why", "-m", "part_defs", "per_part")
    assert bare.returncode == 1
    assert "error: 'per_part' is partitioned; pass --partition KEY" in bare.stderr
