"""sync.py: `Repo.remote/push/fetch/pull`, one owner of the project's remote.

Run on a local folder remote and on moto S3: the remote's settings (`jobs:`)
apply, the remote is opened and checked once per process, locks are named by
name, Lock or RunEntry, pull checks out what it fetched, and the store's
write lock is held while objects move.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pivot_store import run_lookup, status, sync, transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import ConfigError, LockError, TrackError
from pivot_store.repo import Repo


@pytest.fixture(params=["file", "s3"])
def remote_cfg(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "file":
        return {"url": f"file://{tmp_path}/remote"}
    return dict(request.getfixturevalue("s3_remote_config"))


def _project(root: Path, remote: dict[str, Any]) -> Repo:
    repo = Repo.init(root)
    cfg = Config(remotes={"origin": RemoteConfig(**remote)}, default_remote="origin")
    repo.save_config(cfg)
    return repo


@pytest.fixture
def source(tmp_path: Path, remote_cfg: dict[str, Any]) -> Repo:
    """A project with a tracked file and a tracked folder."""
    repo = _project(tmp_path / "a", remote_cfg)
    (repo.root / "table.csv").write_text("a,b\n1,2\n")
    (repo.root / "data" / "sub").mkdir(parents=True)
    for i in range(5):
        (repo.root / "data" / "sub" / f"f{i}.txt").write_text(f"file {i}\n")
    repo.track(repo.root / "table.csv")
    repo.track(repo.root / "data")
    return repo


def _clone(src: Repo, root: Path) -> Repo:
    (root / ".pivot").mkdir(parents=True)
    shutil.copytree(src.stages_dir, root / ".pivot" / "stages")
    shutil.copy(src.config_path, root / ".pivot" / "config.yaml")
    return Repo(root)


def test_push_then_pull_into_another_deployment(source: Repo, tmp_path: Path) -> None:
    pushed = source.push()
    assert pushed.ok and len(pushed.entries) == 2 and pushed.transferred
    clone = _clone(source, tmp_path / "b")
    res = clone.pull()
    assert res.ok and sorted(res.checked_out) == ["data", "table.csv"]
    assert (clone.root / "table.csv").read_text() == "a,b\n1,2\n"
    assert (clone.root / "data" / "sub" / "f3.txt").read_text() == "file 3\n"
    assert {r.status for r in clone.status()} == {"ok"}


def test_fetch_fills_the_cache_only(source: Repo, tmp_path: Path) -> None:
    assert source.push().ok
    clone = _clone(source, tmp_path / "b")
    res = clone.fetch(["table.csv"])
    assert res.ok and res.checked_out == [] and len(res.transferred) == 1
    assert not (clone.root / "table.csv").exists()
    assert clone.status(["table.csv"])[0].status == "missing from workspace"


def test_locks_by_name_lock_or_entry(source: Repo, tmp_path: Path) -> None:
    lock = source.read_lock("table.csv")
    assert lock is not None
    assert source.push(["table.csv"]).complete_locks == ["table.csv"]
    assert source.push([lock], dry_run=True).planned == []
    assert source.push([]).complete_locks == []  # an empty list is nothing, not everything
    with pytest.raises(LockError, match="no lock named 'nope'"):
        source.push(["nope"])
    fresh = _project(tmp_path / "b", source.config.remotes["origin"].model_dump())
    entry = next(iter(run_lookup.lookup(fresh.remote(), lock.name, lock.fingerprint)))
    res = fresh.pull([entry])
    assert res.ok and res.checked_out == ["table.csv"]


def test_dry_run_pull_moves_and_places_nothing(source: Repo, tmp_path: Path) -> None:
    assert source.push().ok
    clone = _clone(source, tmp_path / "b")
    res = clone.pull(dry_run=True)
    assert res.planned and res.checked_out == [] and res.transferred == []
    assert not clone.objects.root.exists() or not any(clone.objects.iter_oids())


def test_pull_records_a_failed_checkout(
    source: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert source.push().ok
    clone = _clone(source, tmp_path / "b")
    real = Repo.checkout_output

    def checkout_output(self: Repo, out: Any, *a: Any, **kw: Any) -> Path:
        if out.path == "table.csv":
            raise TrackError("table.csv is in the way", "move it")
        return real(self, out, *a, **kw)

    monkeypatch.setattr(Repo, "checkout_output", checkout_output)
    res = clone.pull()
    assert "table.csv:table.csv" in res.failed
    assert res.failed["table.csv:table.csv"].startswith("checkout failed:")
    assert res.checked_out == ["data"]


def test_jobs_from_the_config_is_used(
    source: Repo, remote_cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    source.save_config(
        Config(
            remotes={"origin": RemoteConfig(**remote_cfg, jobs=7)},
            default_remote="origin",
        )
    )
    seen: list[int] = []
    real_push, real_fetch = transfer.push, transfer.fetch

    def push(*a: Any, jobs: int, **kw: Any) -> Any:
        seen.append(jobs)
        return real_push(*a, jobs=jobs, **kw)

    def fetch(*a: Any, jobs: int, **kw: Any) -> Any:
        seen.append(jobs)
        return real_fetch(*a, jobs=jobs, **kw)

    monkeypatch.setattr(transfer, "push", push)
    monkeypatch.setattr(transfer, "fetch", fetch)
    assert source.push().ok and source.fetch().ok and source.pull().ok
    # Something new to send: a push with nothing to do returns before transfer.push
    # (known_push), so it would use no jobs at all.
    (source.root / "new.txt").write_text("new\n")
    source.track(source.root / "new.txt")
    assert source.push(jobs=3).ok
    assert seen == [7, 7, 7, 3]
    assert sync.opened(source)[1] == 7


def test_one_remote_per_process_checked_once(
    source: Repo, remote_cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every caller gets the same Remote, and its check runs once for all of them."""
    rem = source.remote()
    assert Repo(source.root).remote() is rem  # another Repo object, the same project
    assert source.remote("origin") is rem
    checks: list[dict[str, bool]] = []
    real = rem._check

    def counting(**kw: bool) -> bool:
        checks.append(kw)
        return real(**kw)

    monkeypatch.setattr(rem, "_check", counting)
    assert source.push().ok
    assert source.fetch().ok and source.pull().ok and source.push(verify_remote=True).ok
    locks = list(source.iter_locks())
    assert status.compare(source.objects, source.remote(), locks).in_sync
    if remote_cfg["url"].startswith("s3://"):
        assert checks == []  # `remote()` already ran the one head_bucket
    else:
        assert checks == [{"create": True, "must_exist": False}]  # the folder is made once


def test_changed_settings_open_a_new_remote(source: Repo, tmp_path: Path) -> None:
    rem = source.remote()
    other = {"url": f"file://{tmp_path}/elsewhere"}
    source.save_config(Config(remotes={"origin": RemoteConfig(**other)}, default_remote="origin"))
    moved = source.remote()
    assert moved is not rem and moved.url == other["url"]


def test_unknown_remote_is_a_config_error(source: Repo) -> None:
    with pytest.raises(ConfigError, match="unknown remote 'nope'"):
        source.push(remote="nope")


def test_objects_move_inside_the_store_write_lock(
    source: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc cannot collect a fetched object before the checkout that needs it."""
    held: list[str] = []
    real_writing = Repo.writing

    @contextlib.contextmanager
    def writing(self: Repo, exclusive: bool = False) -> Iterator[None]:
        with real_writing(self, exclusive):
            held.append("in")
            yield
            held.append("out")

    def watch(name: str) -> None:
        real = getattr(transfer, name)

        def inner(*a: Any, **kw: Any) -> Any:
            held.append(name)
            return real(*a, **kw)

        monkeypatch.setattr(transfer, name, inner)

    monkeypatch.setattr(Repo, "writing", writing)
    watch("push")
    watch("fetch")
    assert source.push().ok
    clone = _clone(source, tmp_path / "b")
    assert clone.pull().ok
    assert held == ["in", "push", "out", "in", "fetch", "out"]
    assert os.path.exists(clone.root / "table.csv")


def test_a_forked_child_opens_its_own(source: Repo) -> None:
    source.remote()
    assert sync._OPENED
    sync._forget_after_fork()
    assert not sync._OPENED
