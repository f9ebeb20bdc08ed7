"""gc keeps what other git branches and tags name (issue 15 item 1), read through git."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pivot_store.git_history import history_locks
from pivot_store.repo import Repo
from tests.fixtures.parts import require


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def git_project(project: Path, cli) -> Path:
    require(shutil.which("git") is not None, "git", "gc reads locks from git history")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "config", "user.email", "t@example.com")
    _git(project, "config", "user.name", "t")
    assert cli("init")[0] == 0
    return project


def _commit_add(root: Path, cli, rel: str, data: bytes, message: str) -> str:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    # A new file, not a write into the hardlinked checkout (root would write the object).
    (root / rel).unlink(missing_ok=True)
    (root / rel).write_bytes(data)
    code, _, err = cli("add", rel)
    assert code == 0, err
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)
    lock = Repo(root).read_lock(rel)
    assert lock is not None
    return lock.outputs[0].hash


def test_gc_keeps_an_object_only_another_branch_names(git_project: Path, cli) -> None:
    root = git_project
    a = _commit_add(root, cli, "data/x.bin", b"A" * 5000, "x = A")
    _git(root, "checkout", "-q", "-b", "feature")
    b = _commit_add(root, cli, "data/x.bin", b"B" * 5000, "x = B")
    _git(root, "checkout", "-q", "main")
    assert cli("checkout")[0] == 0
    assert (root / "data/x.bin").read_bytes() == b"A" * 5000
    repo = Repo(root)
    assert repo.objects.exists(a) and repo.objects.exists(b)

    code, out, err = cli("gc", "--grace", "0", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert b not in report["removed"] and report["git_refs"] >= 2
    assert repo.objects.exists(b)  # only `feature` names it
    _git(root, "checkout", "-q", "feature")
    code, _, err = cli("checkout")
    assert code == 0, err
    assert (root / "data/x.bin").read_bytes() == b"B" * 5000

    # A tag keeps it too, after the branch is gone.
    _git(root, "checkout", "-q", "main")
    _git(root, "tag", "-a", "-m", "v1", "v1", "feature")
    _git(root, "branch", "-q", "-D", "feature")
    assert cli("gc", "--grace", "0")[0] == 0 and repo.objects.exists(b)

    # --workspace-only is the explicit opt-out: now it goes.
    code, out, _ = cli("gc", "--grace", "0", "--workspace-only", "--dry-run", "--json")
    assert json.loads(out)["removed"] == [b] and repo.objects.exists(b)
    code, out, _ = cli("gc", "--grace", "0", "--workspace-only", "--json")
    assert json.loads(out)["removed"] == [b] and not repo.objects.exists(b)
    assert repo.objects.exists(a)


def test_history_locks_reads_folders_and_every_ref_once(git_project: Path, cli) -> None:
    root = git_project
    (root / "d").mkdir()
    for i in range(3):
        (root / "d" / f"f{i}").write_bytes(bytes([i]) * 300)
    assert cli("add", "d")[0] == 0
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "d")
    _git(root, "branch", "same")  # another ref at the same tree
    history = history_locks(Repo(root).stages_dir)
    assert history is not None
    assert [lock.name for lock in history.locks] == ["d"]
    assert len(history.refs) == 1  # main, same and HEAD share one tree: read once
    assert history.locks[0] == Repo(root).read_lock("d")


def test_a_malformed_lock_in_history_stops_gc_before_anything_goes(git_project: Path, cli) -> None:
    root = git_project
    _commit_add(root, cli, "keep.bin", b"K" * 4000, "keep")
    _git(root, "checkout", "-q", "-b", "broken")
    lock = Repo(root).lock_path("keep.bin")
    lock.write_text("name: keep.bin\noutputs: [\n")  # written as a careless merge would
    _git(root, "commit", "-q", "-am", "broken lock")
    _git(root, "checkout", "-q", "main")
    Repo(root).objects.add_bytes(b"garbage" * 100)
    code, _, err = cli("gc", "--grace", "0")
    assert code != 0 and "broken:.pivot/stages/keep.bin.lock" in err
    assert len(list(Repo(root).objects.iter_oids())) == 2  # nothing was removed


def test_outside_git_gc_is_as_before(project: Path, cli) -> None:
    assert cli("init")[0] == 0
    (project / "f.bin").write_bytes(b"F" * 4000)
    assert cli("add", "f.bin")[0] == 0
    old = Repo(project).objects.add_bytes(b"unused" * 1000).oid
    _, out, _ = cli("gc", "--grace", "0", "--json")
    report = json.loads(out)
    assert report["git_refs"] is None and report["removed"] == [old]
