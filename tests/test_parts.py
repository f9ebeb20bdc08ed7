"""tests/fixtures/parts.py: a missing real part skips locally and fails under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NEEDS_A_MISSING_PART = """
from tests.fixtures.parts import missing, require

def test_needs_it():
    missing("unobtainium", "never installed here")

def test_needs_it_conditionally():
    require(False, "unobtainium", "never installed here")

def test_has_it():
    require(True, "air", "always here")
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_tiny.py").write_text(NEEDS_A_MISSING_PART)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", "test_tiny.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_on_ci_a_missing_part_fails(tmp_path: Path) -> None:
    r = _run(tmp_path, "true")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 failed, 1 passed" in r.stdout, r.stdout
    assert "needs unobtainium: never installed here" in r.stdout
    assert "skipped" not in r.stdout


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_elsewhere_a_missing_part_skips(tmp_path: Path, ci: str | None) -> None:
    r = _run(tmp_path, ci)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 2 skipped" in r.stdout, r.stdout
    assert "needs unobtainium: never installed here" in r.stdout
