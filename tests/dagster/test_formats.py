"""Each format round-trips and writes the same bytes in every process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached, formats
from pivot_dagster.engine import Engine
from pivot_dagster.formats import UnserializableValue
from pivot_store.repo import Repo
from tests.dagster.format_values import store_all, values
from tests.dagster.helpers import hits, load_stored

ROOT = Path(__file__).resolve().parents[2]


def _equal(a: object, b: object) -> bool:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
        return True
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and repr(a) == repr(b)
    if isinstance(a, float) and a != a:
        return b != b
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("name", list(values()))
def test_round_trip(name: str, tmp_path: Path) -> None:
    fmt, value = values()[name]
    engine = Engine(Repo.open(tmp_path))
    handler = formats.choose(value)
    assert handler.name == fmt
    out = engine.store_value(value, handler)
    assert out.format == fmt and engine.repo.objects.verify(out.hash)
    assert _equal(value, engine.load(out))


def test_same_bytes_in_two_processes(tmp_path: Path) -> None:
    code = (
        "import json,sys; from tests.dagster.format_values import store_all; "
        "print(json.dumps(store_all(sys.argv[1])))"
    )

    def in_process(folder: Path) -> dict[str, str]:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(folder)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(proc.stdout)

    first, second = in_process(tmp_path / "p1"), in_process(tmp_path / "p2")
    here = store_all(str(tmp_path / "p3"))
    stable = {k: v for k, v in here.items() if values()[k][0] != "pickle"}
    assert {k: first[k] for k in stable} == {k: second[k] for k in stable} == stable


def test_forced_format_and_unserializable(tmp_path: Path) -> None:
    engine = Engine(Repo.open(tmp_path))
    out = engine.store_value({"a": 1}, formats.choose({"a": 1}, forced="pickle"))
    assert out.format == "pickle" and engine.load(out) == {"a": 1}
    with pytest.raises(UnserializableValue, match="cannot store"):
        engine.store_value(lambda: 1, formats.choose(lambda: 1))
    with pytest.raises(UnserializableValue, match="format 'npy'"):
        formats.choose({"a": 1}, forced="npy")


def test_format_forced_by_definition_metadata(project: Path, dagster_instance) -> None:
    @asset(metadata={"pivot/format": "pickle"})
    def forced() -> dict:
        return {"a": 1}

    assert materialize(
        [forced],
        resources={"io_manager": PivotIOManager(project_dir=str(project))},
        instance=dagster_instance,
    ).success
    lock = Repo.open(project).read_lock("forced")
    assert lock.outputs[0].format == "pickle"


def test_path_outputs_file_and_folder(project: Path, dagster_instance) -> None:
    calls = []

    @asset(code_version="1")
    @cached
    def report() -> Path:
        calls.append("report")
        p = project / "out" / "report.txt"
        p.parent.mkdir(exist_ok=True)
        p.write_text("hello")
        return p

    @asset(code_version="1")
    @cached
    def folder() -> Path:
        calls.append("folder")
        d = project / "out" / "tree"
        (d / "sub").mkdir(parents=True, exist_ok=True)
        (d / "a.txt").write_text("a")
        (d / "sub" / "b.txt").write_text("b")
        return d

    @asset(code_version="1")
    @cached
    def sizes(report: Path, folder: Path) -> dict:
        return {
            "report": report.read_text(),
            "files": sorted(
                p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
            ),
        }

    io = PivotIOManager(project_dir=str(project), checkout_mode="copy")
    assert materialize(
        [report, folder, sizes], resources={"io_manager": io}, instance=dagster_instance
    ).success
    assert load_stored(project, "sizes") == {"report": "hello", "files": ["a.txt", "sub/b.txt"]}
    lock = Repo.open(project).read_lock("folder")
    assert lock.outputs[0].kind == "dir" and lock.outputs[0].path == "out/tree"
    import shutil

    shutil.rmtree(project / "out")  # the hit checks both back out
    r = materialize(
        [report, folder, sizes], resources={"io_manager": io}, instance=dagster_instance
    )
    assert r.success and set(hits(dagster_instance, r.run_id).values()) == {True}
    assert sorted(calls) == ["folder", "report"]
    assert (project / "out/report.txt").read_text() == "hello"
    assert (project / "out/tree/sub/b.txt").read_text() == "b"
