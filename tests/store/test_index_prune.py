"""Index entries of deleted locks are pruned (issue 17): a full `status` drops the
lock, workspace and folder entries of locks that are gone, gc drops manifest
entries nothing names; the entries of the locks that remain stay and still hit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pivot_store import folder_index, lock_index, manifest_index, state, workspace_index
from pivot_store.cli.commands import collect_garbage
from pivot_store.repo import Repo
from tests.store.test_lock_index import _settle, _track


def _folder(repo: Repo, name: str) -> Path:
    d = repo.root / name
    d.mkdir()
    for i in range(5):
        (d / f"f{i}.txt").write_text(f"{name} {i}")
    repo.track(d)
    return d


def _present(repo: Repo, keys: list[bytes]) -> list[bool]:
    return [v is not None for v in repo.state.get_many(keys)]


def _lock_key(repo: Repo, name: str) -> bytes:
    return lock_index._PREFIX + os.fsencode(os.fspath(repo.lock_path(name)))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the next commands read again: lock files parsed, files hashed."""
    seen: list[str] = []
    parse, hash_file = lock_index.lock_from_bytes, state.hash_file

    def parsing(raw: bytes, path: object) -> object:
        seen.append(f"lock {os.path.basename(str(path))}")
        return parse(raw, path)  # type: ignore[arg-type]

    def hashing(path: object, size: int | None = None) -> str:
        seen.append(f"file {os.path.basename(str(path))}")
        return hash_file(path, size)  # type: ignore[arg-type]

    monkeypatch.setattr(lock_index, "lock_from_bytes", parsing)
    monkeypatch.setattr(state, "hash_file", hashing)
    return seen


def test_a_full_status_prunes_the_entries_of_deleted_locks(repo: Repo, reads: list[str]) -> None:
    _track(repo, "keep.txt", "kept")
    _track(repo, "gone.txt", "removed")
    kept, gone = _folder(repo, "kept_dir"), _folder(repo, "gone_dir")
    (kept / "f0.txt").chmod(0o644)
    (kept / "f0.txt").unlink()
    (kept / "f0.txt").write_text("kept 0, a new version")  # the folder table is used
    _settle()
    repo.status()
    _settle()
    repo.status()
    names = ["keep.txt", "gone.txt", "kept_dir", "gone_dir"]
    lock_keys = [_lock_key(repo, n) for n in names]
    ws_keys = [workspace_index._key(repo.root / n) for n in names]
    table_keys = [folder_index.key(kept), folder_index.key(gone)]
    assert all(_present(repo, lock_keys + ws_keys + table_keys))

    repo.lock_path("gone.txt").unlink()
    repo.lock_path("gone_dir").unlink()
    reads.clear()
    rows = repo.status()
    assert {r.name: r.status for r in rows} == {"keep.txt": "ok", "kept_dir": "modified"}
    assert _present(repo, lock_keys) == [True, False, True, False]
    assert _present(repo, ws_keys) == [True, False, True, False]
    assert _present(repo, table_keys) == [True, False]
    assert reads == []  # the remaining entries still hit: nothing parsed or hashed
    (kept / "f1.txt").chmod(0o644)
    (kept / "f1.txt").unlink()
    (kept / "f1.txt").write_text("kept 1, changed too")
    repo.status()
    assert reads == ["file f1.txt"]  # the kept folder's table still serves its files


def test_a_status_of_named_locks_prunes_nothing(repo: Repo) -> None:
    _track(repo, "a.txt", "a")
    _track(repo, "b.txt", "b")
    _settle()
    repo.status()
    keys = [workspace_index._key(repo.root / "b.txt"), _lock_key(repo, "b.txt")]
    repo.status(["a.txt"])
    assert _present(repo, keys) == [True, True]


def test_gc_prunes_manifest_entries_nothing_names(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, gone = _folder(repo, "kept_dir"), _folder(repo, "gone_dir")
    del kept, gone
    collect_garbage(repo, grace_hours=0, dry_run=True)  # fills the manifest index
    oids = {n: repo.read_lock(n).outputs[0].hash for n in ("kept_dir", "gone_dir")}  # type: ignore[union-attr]
    keys = [manifest_index._PREFIX + oids[n].encode() for n in ("kept_dir", "gone_dir")]
    assert _present(repo, keys) == [True, True]
    repo.lock_path("gone_dir").unlink()
    read: list[str] = []
    real = type(repo.objects).read_bytes

    def counting(self: object, oid: str) -> bytes:
        read.append(oid)
        return real(self, oid)  # type: ignore[arg-type]

    monkeypatch.setattr(type(repo.objects), "read_bytes", counting)
    collect_garbage(repo, grace_hours=24, dry_run=True)
    assert _present(repo, keys) == [True, False]
    assert read == []  # the kept manifest's entry still hits
