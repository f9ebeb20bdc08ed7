"""A push with nothing to do is decided from lock summaries (`known_push`) and makes
no request; any change (a lock rewritten in place, an object gone from the cache)
sends it down the full push, which gives the answer it always gave."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pivot_store import manifest_index, objects, transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.manifest import Manifest
from pivot_store.repo import Repo
from tests.store.test_lock_index import _rewrite_in_place, _same_size_lock, _settle, _track


@pytest.fixture
def pushed(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Repo, list]:
    """A project with a file and a folder, pushed once to a folder remote; the calls
    that reach `transfer.push` are counted from then on."""
    cfg = Config(
        remotes={"origin": RemoteConfig(url=f"file://{tmp_path}/remote")}, default_remote="origin"
    )
    repo.save_config(cfg)
    _track(repo, "a.txt", "first")
    (repo.root / "d").mkdir()
    for i in range(3):
        (repo.root / "d" / f"f{i}.txt").write_text(f"file {i}")
    repo.track(repo.root / "d")
    assert repo.push().ok
    _settle()
    calls: list[Any] = []
    real = transfer.push

    def spy(*a: Any, **kw: Any) -> Any:
        calls.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(transfer, "push", spy)
    return repo, calls


def _remote_has(tmp_path: Path, oid: str) -> bool:
    return (tmp_path / "remote" / "files" / oid[:2] / oid[2:]).exists()


def test_a_push_with_nothing_to_do_reads_no_lock_and_reaches_no_remote(
    pushed: tuple[Repo, list],
) -> None:
    repo, calls = pushed
    every = {o for lk in repo.iter_locks() for out in lk.outputs for o in repo.output_oids(out)}
    res = repo.push()
    assert res.ok and calls == []
    assert set(res.present) == every and res.transferred == []
    assert res.complete_locks == ["a.txt", "d"]
    assert repo.push(["a.txt"]).ok and calls == []


def test_a_lock_rewritten_in_place_is_pushed(pushed: tuple[Repo, list], tmp_path: Path) -> None:
    repo, calls = pushed
    assert repo.push().ok and calls == []  # the summaries are recorded
    data = _same_size_lock(repo, "a.txt", "other")
    _rewrite_in_place(repo.lock_path("a.txt"), data)
    new = repo.read_lock("a.txt").outputs[0].hash  # type: ignore[union-attr]
    assert not _remote_has(tmp_path, new)
    res = repo.push()
    assert res.ok and len(calls) == 1
    assert [lk.name for lk in calls[0][2]] == ["a.txt"]  # only the changed lock is read
    assert new in res.transferred and _remote_has(tmp_path, new)
    assert res.complete_locks == ["a.txt", "d"]
    d = repo.read_lock("d").outputs[0].hash  # type: ignore[union-attr]
    assert d in res.present  # the settled lock's objects, merged in


def test_an_object_missing_locally_is_reported_as_before(pushed: tuple[Repo, list]) -> None:
    repo, calls = pushed
    d = repo.read_lock("d").outputs[0].hash  # type: ignore[union-attr]
    child = next(iter(repo.manifest(d).files())).hash
    os.unlink(repo.objects.path(child))  # gone from the cache, still on the remote
    res = repo.push()
    assert len(calls) == 1 and [lk.name for lk in calls[0][2]] == ["d"]
    assert child in res.failed and "not in the local cache" in res.failed[child]
    assert res.complete_locks == ["a.txt"]


def test_a_verify_remote_push_is_never_settled(pushed: tuple[Repo, list], tmp_path: Path) -> None:
    repo, calls = pushed
    a = repo.read_lock("a.txt").outputs[0].hash  # type: ignore[union-attr]
    shutil.rmtree(tmp_path / "remote" / "files" / a[:2])  # deleted behind pivot's back
    assert repo.push().ok and calls == []  # the index still vouches for it
    res = repo.push(verify_remote=True)
    assert len(calls) == 1 and a in res.transferred and _remote_has(tmp_path, a)


def test_manifest_files_are_remembered_only_from_bytes_that_match_their_id(repo: Repo) -> None:
    (repo.root / "d").mkdir()
    for i in range(2):
        (repo.root / "d" / f"f{i}.txt").write_text(f"file {i}")
    d = repo.track(repo.root / "d").outputs[0].hash
    good = repo.objects.read_bytes(d)
    real = [e.hash for e in Manifest.from_bytes(good, d).files()]
    other = repo.objects.add_bytes(b"another file").oid
    forged = good.replace(real[0].encode(), other.encode())  # still a valid manifest
    path = repo.objects.path(d)
    path.chmod(0o644)
    path.write_bytes(forged)
    assert manifest_index.files_of(repo.objects, repo.state, [d])[d][0] == other
    path.write_bytes(good)  # repaired (pulled again)
    assert manifest_index.files_of(repo.objects, repo.state, [d])[d] == real


@pytest.mark.parametrize("list_at", [1, 10**9])
def test_missing_objects_by_listing_or_by_stat(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, list_at: int
) -> None:
    monkeypatch.setattr(objects, "_LIST_AT", list_at)
    have = [repo.objects.add_bytes(b"%d" % i).oid for i in range(40)]
    absent = [h[:2] + ("0" if h[2] != "0" else "1") + h[3:] for h in have]
    absent = [a for a in absent if a not in have] + ["00" * 8, "ab" * 8 + ".dir"]
    assert repo.objects.missing(have + absent) == set(absent)
    assert repo.objects.missing(have, valid=True) == set()


def test_a_folder_file_the_index_does_not_know_takes_the_full_push(
    pushed: tuple[Repo, list],
) -> None:
    from pivot_store.remote_index import KnownIndex

    repo, calls = pushed
    d = repo.read_lock("d").outputs[0].hash  # type: ignore[union-attr]
    child = next(iter(repo.manifest(d).files())).hash
    KnownIndex(repo.objects.root, repo.remote().identity).discard([child])
    res = repo.push()
    assert res.ok and len(calls) == 1 and child in res.present
