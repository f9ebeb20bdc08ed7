"""Per-file reuse in a changed folder (issue 17): `manifest.build` hashes only the
files whose stat signature changed, and no change ever hides behind it.

Each test fills the index, changes the folder the way that is hardest to see,
and checks two things: the manifest is the one a build that knows nothing
gives (`NullState`), and exactly the expected files were read again (all of
them would be, without the index).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash

from pivot_store import folder_index, state, workspace_index
from pivot_store.config import Config
from pivot_store.hashing import hash_file
from pivot_store.index_record import pack
from pivot_store.manifest import build
from pivot_store.objects import ObjectStore
from pivot_store.repo import Repo
from pivot_store.state import RACY_NS, NullState
from tests.store.test_lock_index import _rewrite_in_place, _settle

N = 40


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The relative names of the files the state db hashed (reads), in order."""
    seen: list[str] = []
    real = state.hash_file

    def counting(path: str | os.PathLike[str], size: int | None = None) -> str:
        seen.append(os.path.basename(path))
        return real(path, size)

    monkeypatch.setattr(state, "hash_file", counting)
    return seen


def _folder(root: Path) -> Path:
    d = root / "d"
    (d / "sub").mkdir(parents=True)
    for i in range(N):
        (d / ("sub" if i % 2 else "") / f"f{i:02}.txt").write_text(f"file {i:02}")
    return d


class _Knows(NullState):
    """A state that knows nothing and is not counted by `hashed`."""

    def hash(self, path: Path, st: os.stat_result | None = None) -> str:
        return hash_file(path)


def _fresh(folder: Path) -> str:
    """The folder's manifest id as a build that knows nothing gives it."""
    return build(folder, None, _Knows()).oid()


def _filled(repo: Repo, hashed: list[str]) -> Path:
    """A folder whose every file the index knows (built once, settled)."""
    d = _folder(repo.root)
    _settle()
    build(d, None, repo.state)
    assert len(hashed) == N
    hashed.clear()
    return d


def test_an_unchanged_folder_is_rebuilt_without_reading_a_file(
    repo: Repo, hashed: list[str]
) -> None:
    d = _filled(repo, hashed)
    assert build(d, None, repo.state).oid() == _fresh(d)
    assert hashed == []


def test_one_file_modified_is_the_only_one_read(repo: Repo, hashed: list[str]) -> None:
    d = _filled(repo, hashed)
    (d / "f04.txt").write_text("changed, and longer")
    assert build(d, None, repo.state).oid() == _fresh(d)
    assert hashed == ["f04.txt"]


def test_a_file_rewritten_in_place_with_its_mtime_put_back_is_read(
    repo: Repo, hashed: list[str]
) -> None:
    d = _filled(repo, hashed)
    _rewrite_in_place(d / "f06.txt", b"FILE 06")
    assert build(d, None, repo.state).oid() == _fresh(d)
    assert hashed == ["f06.txt"]


def test_a_replaced_file_same_size_and_mtime_is_read(repo: Repo, hashed: list[str]) -> None:
    d = _filled(repo, hashed)
    old = os.stat(d / "f08.txt")
    tmp = d / "tmp-new"
    tmp.write_text("FILE 08")
    os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tmp, d / "f08.txt")
    assert os.stat(d / "f08.txt").st_ino != old.st_ino
    assert build(d, None, repo.state).oid() == _fresh(d)
    assert hashed == ["f08.txt"]


def test_added_and_removed_files_show(repo: Repo, hashed: list[str]) -> None:
    d = _filled(repo, hashed)
    (d / "sub" / "f01.txt").unlink()
    (d / "new.txt").write_text("new")
    m = build(d, None, repo.state)
    paths = {e.path for e in m.entries}
    assert "new.txt" in paths and "sub/f01.txt" not in paths
    assert m.oid() == _fresh(d)
    assert hashed == ["new.txt"]


def test_a_chmod_shows_in_the_manifest(repo: Repo, hashed: list[str]) -> None:
    d = _filled(repo, hashed)
    os.chmod(d / "f10.txt", 0o755)
    m = build(d, None, repo.state)
    assert {e.path: e.exec for e in m.entries}["f10.txt"] is True
    assert m.oid() == _fresh(d)
    assert hashed == ["f10.txt"]  # the ctime moved: read again, mode from the scan


def test_a_file_within_the_racy_window_is_read_again(
    repo: Repo, hashed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _filled(repo, hashed)
    (d / "f12.txt").write_text("changed")
    st = os.stat(d / "f12.txt")
    stamp = max(st.st_mtime_ns, st.st_ctime_ns)
    monkeypatch.setattr(folder_index, "_now", lambda: stamp + 1)
    build(d, None, repo.state)
    assert hashed == ["f12.txt"]
    monkeypatch.setattr(folder_index, "_now", lambda: stamp + RACY_NS)
    assert build(d, None, repo.state).oid() == _fresh(d)
    assert hashed == ["f12.txt", "f12.txt"]  # not recorded in the window: read again
    assert build(d, None, repo.state).oid() == _fresh(d)
    assert hashed == ["f12.txt", "f12.txt"]  # recorded once settled


def test_settled_is_judged_before_the_files_are_read(
    repo: Repo, hashed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read within its own timestamp tick could be rewritten in that tick after
    the read: however long the build then takes, its row is not recorded."""
    d = _filled(repo, hashed)
    (d / "f14.txt").write_text("changed")
    st = os.stat(d / "f14.txt")
    clock = iter([max(st.st_mtime_ns, st.st_ctime_ns) + 1])
    monkeypatch.setattr(folder_index, "_now", lambda: next(clock, st.st_mtime_ns + 10**10))
    build(d, None, repo.state)
    build(d, None, repo.state)
    assert hashed == ["f14.txt", "f14.txt"]


def test_a_damaged_or_foreign_table_is_not_known(repo: Repo, hashed: list[str]) -> None:
    d = _filled(repo, hashed)
    key = folder_index.key(d)
    raw = repo.state.get_many([key])[0]
    assert raw is not None
    mid = len(raw) // 2
    body = raw[8:]
    one_row_short = (N - 1).to_bytes(4, "little") + body[4:]  # names no longer match
    for value in (
        raw[:mid] + bytes([raw[mid] ^ 1]) + raw[mid + 1 :],  # damaged
        pack([1, [["f00.txt", 1, 2, 3, 4, 5, "0123456789abcdef"]]]),  # another format
        xxhash.xxh64_digest(one_row_short) + one_row_short,  # checksummed, wrong layout
        raw[:20],
    ):
        repo.state.put_many([(key, value)])
        assert build(d, None, repo.state).oid() == _fresh(d)
        assert len(hashed) == N
        hashed.clear()


def test_status_of_a_changed_folder_reads_only_the_change(repo: Repo, hashed: list[str]) -> None:
    repo.save_config(Config(checkout_mode="copy"))
    d = _folder(repo.root)
    repo.track(d)
    _settle()
    assert [r.status for r in repo.status()] == ["ok"]
    hashed.clear()
    (d / "f16.txt").write_text("edited")
    assert [r.status for r in repo.status()] == ["modified"]
    assert hashed == ["f16.txt"]
    (d / "f16.txt").write_text("file 16")  # back to what the lock says
    assert [r.status for r in repo.status()] == ["ok"]
    assert workspace_index.WorkspaceIndex(repo.state).folder_hash(d) == _fresh(d)


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_add_of_a_changed_folder_adds_only_the_change(
    repo: Repo, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.save_config(Config(checkout_mode=mode))  # type: ignore[arg-type]
    d = _folder(repo.root)
    repo.track(d)
    _settle()
    repo.status()  # the index learns the files as the checkout left them
    _settle()
    repo.status()
    added: list[str] = []
    real = ObjectStore.add_file

    def counting(self: ObjectStore, src: str | os.PathLike[str], **kw: object) -> object:
        added.append(os.path.basename(src))
        return real(self, src, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ObjectStore, "add_file", counting)
    target = d / "sub" / "f17.txt"
    target.chmod(0o644)
    target.unlink()  # a hardlinked file is the cache object: replace, never edit
    target.write_text("a new version")
    lock = repo.track(d)
    assert added == ["f17.txt"]
    assert lock.outputs[0].hash == _fresh(d)
    for e in repo.manifest(lock.outputs[0].hash).files():
        assert repo.objects.exists(e.hash)  # type: ignore[arg-type]
    assert [r.status for r in repo.status()] == ["ok"]


def test_add_restores_a_known_file_whose_object_is_gone(repo: Repo) -> None:
    repo.save_config(Config(checkout_mode="copy"))
    d = _folder(repo.root)
    repo.track(d)
    _settle()
    repo.status()
    gone = repo.manifest(repo.read_lock("d").outputs[0].hash).entries  # type: ignore[union-attr]
    oid = next(e.hash for e in gone if e.path == "f00.txt")
    repo.objects.remove(oid)  # type: ignore[arg-type]
    repo.track(d)
    assert repo.objects.exists(oid)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_workspace_output_read_within_its_racy_window_is_not_recorded(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """However long hashing then takes: a write just after the read, in the same
    tick as the stamp, would keep the signature (settled was judged after it)."""
    repo.save_config(Config(checkout_mode="copy"))
    if kind == "file":
        target = repo.root / "a.txt"
        target.write_text("first")
        repo.track(target)
        target.write_text("other")
        newest = os.stat(target)
    else:
        target = _folder(repo.root)
        repo.track(target)
        (target / "f00.txt").write_text("other")
        newest = os.stat(target / "f00.txt")
    stamp = max(newest.st_mtime_ns, newest.st_ctime_ns)
    read: list[str] = []
    real = state.hash_file

    def reading(path: str | os.PathLike[str], size: int | None = None) -> str:
        read.append(os.fspath(path))
        return real(path, size)

    monkeypatch.setattr(state, "hash_file", reading)
    # The clock says "just after the stamp" until a file is read, "long after" since.
    monkeypatch.setattr(workspace_index, "_now", lambda: stamp + (10**10 if read else 1))
    monkeypatch.setattr(folder_index, "_now", lambda: stamp + (10**10 if read else 1))
    assert [r.status for r in repo.status()] == ["modified"]
    assert repo.state.get_many([workspace_index._key(target)]) == [None]
