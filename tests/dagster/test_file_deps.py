"""Declared file and folder deps: `cached(file_deps=[...])`, hashed through the state db.

Issue 13 item 5: an asset that reads a file itself (`pd.read_csv("export.csv")`)
hit forever after the file changed; there was no way to declare it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached
from pivot_dagster.file_deps import file_hash
from pivot_store import hashing
from pivot_store.repo import Repo
from tests.dagster.helpers import hits, load_stored, materializations

CALLS: list[str] = []


@asset(code_version="1")
@cached(file_deps=["export.csv"])
def sales() -> list:
    CALLS.append("sales")
    with open("export.csv") as f:  # the project root is the cwd here
        return [line.strip() for line in f]


@asset(code_version="1")
@cached(file_deps=["data"])
def folder() -> int:
    CALLS.append("folder")
    return sum(p.stat().st_size for p in Path("data").rglob("*") if p.is_file())


@asset(code_version="1")
@cached(file_deps=["extra.csv"])
def optional() -> str:
    CALLS.append("optional")
    extra = Path("extra.csv")
    return extra.read_text() if extra.exists() else ""


def _run(project: Path, instance: Any, asset_def: Any) -> bool:
    r = materialize([asset_def], resources={"io_manager": PivotIOManager(project_dir=str(project))},
                    instance=instance)  # fmt: skip
    assert r.success
    return next(iter(hits(instance, r.run_id).values()))


def test_edited_file_is_a_miss(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    (project / "export.csv").write_text("a,1\n")
    assert _run(project, dagster_instance, sales) is False
    assert _run(project, dagster_instance, sales) is True  # unchanged: a hit
    (project / "export.csv").write_text("a,1\nb,2\n")
    assert _run(project, dagster_instance, sales) is False
    assert load_stored(project, "sales") == ["a,1", "b,2"]
    lock = Repo.open(project).read_lock("sales")
    assert lock.parts.files == {"export.csv": hashing.hash_file(project / "export.csv")}
    assert CALLS == ["sales", "sales"]


def test_missing_file_is_a_miss_that_says_why(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    assert _run(project, dagster_instance, optional) is False
    assert _run(project, dagster_instance, optional) is False  # never a hit without the file
    meta = materializations(dagster_instance, "optional")[-1].metadata
    assert "file dep `extra.csv` does not exist" in meta["pivot/not_cached"].value
    (project / "extra.csv").write_text("now here")
    assert _run(project, dagster_instance, optional) is False
    assert _run(project, dagster_instance, optional) is True
    assert load_stored(project, "optional") == "now here"
    assert CALLS == ["optional"] * 3


def test_folder_is_hashed_as_a_manifest(project: Path, dagster_instance: Any) -> None:
    CALLS.clear()
    (project / "data").mkdir()
    (project / "data" / "f.txt").write_text("abc")
    assert _run(project, dagster_instance, folder) is False
    assert _run(project, dagster_instance, folder) is True
    (project / "data" / "sub").mkdir()
    (project / "data" / "sub" / "g.txt").write_text("defg")
    assert _run(project, dagster_instance, folder) is False
    assert load_stored(project, "folder") == 7
    (project / "data" / "sub" / "g.txt").rename(project / "data" / "sub" / "h.txt")
    assert _run(project, dagster_instance, folder) is False  # a rename changes the manifest
    assert CALLS == ["folder"] * 3


def test_unchanged_big_file_costs_a_stat(project: Path) -> None:
    """The state db answers for an unchanged file: no read of its bytes."""
    repo = Repo.open(project)
    big = project / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 64)  # 64 MiB
    old = time.time() - 60  # out of the racy window, so the state db records it
    os.utime(big, (old, old))
    t0 = time.perf_counter()
    first = file_hash(repo, "big.bin")
    cold = time.perf_counter() - t0
    assert repo.state.get(big, os.stat(big)) == first  # recorded in the state db
    t0 = time.perf_counter()
    for _ in range(10):
        assert file_hash(repo, str(big)) == first  # absolute paths too
    warm = (time.perf_counter() - t0) / 10
    assert warm < cold / 5, (warm, cold)
    # changed bytes with the same size are seen (the stamp changes)
    with open(big, "r+b") as f:
        f.write(b"changed")
    assert file_hash(repo, "big.bin") != first
