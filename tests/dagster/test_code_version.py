"""Auto code version: comment and format edits do not re-run; logic edits do."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

from dagster import materialize

from pivot_dagster import PivotIOManager
from pivot_dagster.code_version import source_code_version
from tests.dagster.helpers import hits

BASE = '''
from dagster import asset
from pivot_dagster import cached, pivot_asset

CALLS = []

@asset
@cached
def auto() -> int:
    """Docstring."""
    CALLS.append(1)
    return {body}

@pivot_asset
def shown() -> int:
    return 1
'''


def _load(tmp: Path, body: str, n: int):
    path = tmp / f"assets_{n}.py"
    path.write_text(textwrap.dedent(BASE.format(body=body)))
    spec = importlib.util.spec_from_file_location(f"pivot_cv_test_{n}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_source_version_ignores_comments_and_format(tmp_path: Path) -> None:
    a = _load(tmp_path, "1 + 1", 0)
    b = _load(tmp_path, "(1 +   1)  # a comment", 1)
    c = _load(tmp_path, "1 + 2", 2)
    va, vb, vc = (source_code_version(m.auto.op.compute_fn.decorated_fn) for m in (a, b, c))
    assert va == vb != vc and va.startswith("src-")
    # pivot_asset hands the derived version to Dagster, so staleness agrees with pivot
    assert a.shown.code_versions_by_key[a.shown.key].startswith("src-")


def test_comment_edit_hits_logic_edit_runs(project: Path, tmp_path: Path, dagster_instance) -> None:
    io = {"io_manager": PivotIOManager(project_dir=str(project))}
    runs = []
    for n, body in enumerate(["1 + 1", "1 + 1  # comment only", "1 + 2"]):
        mod = _load(tmp_path, body, 10 + n)
        r = materialize([mod.auto], resources=io, instance=dagster_instance)
        runs.append((len(mod.CALLS), hits(dagster_instance, r.run_id)["auto"]))
    assert runs == [(1, False), (0, True), (1, False)]
