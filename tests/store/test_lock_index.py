"""The lock index and the workspace index (issue 17): an unchanged lock or output
costs a stat, and no change of a lock, a file or a folder ever hides behind them.

Each test changes something the way that is hardest to see (same size, the
mtime put back, only the ctime left to tell) after the indexes were filled,
and checks the answer is the one a fresh read gives.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pivot_store import lock_index, runcache, workspace_index
from pivot_store.cli.commands import collect_garbage
from pivot_store.index_record import pack, unpack
from pivot_store.lock_index import LockSummary
from pivot_store.lockfile import Lock, read_lock
from pivot_store.repo import Repo
from pivot_store.state import RACY_NS

SETTLE = RACY_NS / 1e9 * 1.5


def _settle() -> None:
    """Let what was just written age past RACY_NS, so the indexes record it."""
    time.sleep(SETTLE)


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite `path` with same-size `data` in place (same inode), mtime put back:
    only the ctime says it changed."""
    st = os.stat(path)
    assert len(data) == st.st_size
    mode = st.st_mode
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data)
    os.chmod(path, mode & 0o777)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )


def _track(repo: Repo, rel: str, text: str) -> Lock:
    path = repo.root / rel
    if path.exists():
        path.chmod(0o644)
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return repo.track(path)


def _statuses(repo: Repo) -> dict[str, str]:
    return {row.name: row.status for row in repo.status()}


def _index_key(repo: Repo, name: str) -> bytes:
    return lock_index._PREFIX + os.fsencode(os.fspath(repo.lock_path(name)))


def _same_size_lock(repo: Repo, name: str, text: str) -> bytes:
    """The bytes of `name`'s lock if its file had held `text` (same length): the object
    is stored, the lock is not written."""
    lock = repo.read_lock(name)
    assert lock is not None
    out = lock.outputs[0]
    assert len(text.encode()) == out.size
    rec = repo.objects.add_bytes(text.encode())
    new = Lock.build(lock.name, lock.parts, [out.replace(hash=rec.oid)])
    data = new.to_yaml()
    assert len(data) == len(lock.to_yaml())
    return data


def test_a_lock_edited_in_place_is_read_again(repo: Repo) -> None:
    _track(repo, "a.txt", "first")
    _settle()
    assert _statuses(repo) == {"a.txt": "ok"}
    assert unpack(repo.state.get_many([_index_key(repo, "a.txt")])[0]) is not None
    data = _same_size_lock(repo, "a.txt", "other")
    _rewrite_in_place(repo.lock_path("a.txt"), data)
    fresh = read_lock(repo.lock_path("a.txt"))
    assert repo.lock_summaries() == [LockSummary.of(fresh)]
    # The workspace still has "first": the lock now names "other".
    assert _statuses(repo) == {"a.txt": "modified"}


def test_a_lock_recorded_within_the_racy_window_is_not_trusted(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _track(repo, "a.txt", "first")
    st = os.stat(repo.lock_path("a.txt"))
    # "Now" is the lock's own timestamp: a rewrite within this tick could keep its stamp.
    monkeypatch.setattr(lock_index, "_now", lambda: max(st.st_mtime_ns, st.st_ctime_ns) + 1)
    assert repo.lock_summaries()[0].name == "a.txt"
    assert repo.state.get_many([_index_key(repo, "a.txt")]) == [None]
    monkeypatch.setattr(lock_index, "_now", lambda: max(st.st_mtime_ns, st.st_ctime_ns) + RACY_NS)
    repo.lock_summaries()
    assert unpack(repo.state.get_many([_index_key(repo, "a.txt")])[0]) is not None


def test_a_damaged_index_value_is_read_from_the_lock_and_rewritten(repo: Repo) -> None:
    lock = _track(repo, "a.txt", "first")
    _settle()
    assert _statuses(repo) == {"a.txt": "ok"}
    key = _index_key(repo, "a.txt")
    value = repo.state.get_many([key])[0]
    assert value is not None
    forged = value.replace(lock.outputs[0].hash.encode(), b"0" * 16)
    assert forged != value and forged[8:] != value[8:]
    repo.state.put_many([(key, forged)])  # a flipped payload behind the old checksum
    assert _statuses(repo) == {"a.txt": "ok"}
    assert repo.lock_summaries()[0].outputs[0].hash == lock.outputs[0].hash
    assert repo.state.get_many([key]) == [value]  # rebuilt


def test_an_unreadable_state_db_is_rebuilt(repo: Repo) -> None:
    lock = _track(repo, "a.txt", "first")
    _settle()
    assert _statuses(repo) == {"a.txt": "ok"}
    repo.state.close()
    data = repo.pivot_dir / "state.lmdb" / "data.mdb"
    data.write_bytes(b"\xff" * data.stat().st_size)
    again = Repo(repo.root)
    assert {r.name: r.status for r in again.status()} == {"a.txt": "ok"}
    assert again.lock_summaries()[0].outputs[0].hash == lock.outputs[0].hash
    key = _index_key(repo, "a.txt")
    assert unpack(again.state.get_many([key])[0]) is not None


def test_a_deleted_lock_is_gone_from_status(repo: Repo) -> None:
    _track(repo, "a.txt", "first")
    _track(repo, "b.txt", "second")
    _settle()
    assert _statuses(repo) == {"a.txt": "ok", "b.txt": "ok"}
    repo.lock_path("a.txt").unlink()
    assert _statuses(repo) == {"b.txt": "ok"}
    assert repo.lock_names() == ["b.txt"]


def test_a_changed_workspace_file_is_modified(repo: Repo) -> None:
    _track(repo, "a.txt", "first")
    _settle()
    assert _statuses(repo) == {"a.txt": "ok"}
    # In place, same size, mtime put back (through the hardlink the cache object
    # changes too: only the workspace stamp and the bytes tell).
    _rewrite_in_place(repo.root / "a.txt", b"FIRST")
    assert _statuses(repo) == {"a.txt": "modified"}


def test_a_changed_workspace_folder_is_modified(repo: Repo) -> None:
    folder = repo.root / "d"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        (folder / "sub" / f"f{i}.txt").write_text(f"file {i}")
    repo.track(folder)
    _settle()
    assert _statuses(repo) == {"d": "ok"}
    key = workspace_index._key(folder)
    assert unpack(repo.state.get_many([key])[0]) is not None  # the folder is known
    assert _statuses(repo) == {"d": "ok"}
    _rewrite_in_place(folder / "sub" / "f1.txt", b"FILE 1")
    assert _statuses(repo) == {"d": "modified"}


@pytest.mark.parametrize("change", ["add", "remove", "empty dir", "chmod"])
def test_a_folder_with_entries_changed_is_modified(repo: Repo, change: str) -> None:
    folder = repo.root / "d"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"file {i}")
    repo.track(folder)
    _settle()
    assert _statuses(repo) == {"d": "ok"}
    if change == "add":
        (folder / "new.txt").write_text("new")
    elif change == "remove":
        (folder / "f0.txt").unlink()
    elif change == "empty dir":
        (folder / "empty").mkdir()
    else:
        (folder / "f2.txt").chmod(0o755)
    assert _statuses(repo) == {"d": "modified"}


def test_gc_keeps_the_objects_of_a_lock_changed_in_place(repo: Repo) -> None:
    _track(repo, "a.txt", "first")
    old = repo.read_lock("a.txt").outputs[0].hash  # type: ignore[union-attr]
    _settle()
    res = collect_garbage(repo, grace_hours=0, dry_run=True)  # fills the index
    assert old not in res.removed
    data = _same_size_lock(repo, "a.txt", "other")
    _rewrite_in_place(repo.lock_path("a.txt"), data)
    new = read_lock(repo.lock_path("a.txt")).outputs[0].hash
    assert new != old
    res = collect_garbage(repo, grace_hours=0, dry_run=True)
    assert new not in res.removed
    assert old in res.removed


def test_a_lock_summary_names_the_entry_runcache_would(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pivot_store import known_push
    from pivot_store.signing import ENV_KEY

    lock = _track(repo, "dir/a b.txt", "first")
    summary = LockSummary.of(lock)
    assert summary.entry_id == runcache.entry_id(lock)
    assert known_push.entry_rel(summary) == runcache.entry_rel(lock)
    monkeypatch.setenv(ENV_KEY, "k" * 32)
    assert known_push.entry_rel(summary) == runcache.entry_rel(lock)
    assert "-" in known_push.entry_rel(summary).rsplit("/", 1)[1]


def test_index_records_refuse_anything_damaged() -> None:
    value = pack(["x", 1])
    assert unpack(value) == ["x", 1]
    assert unpack(value[:8] + b'["y",1]') is None
    assert unpack(b"short") is None
    assert unpack(None) is None


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_workspace_output_hashed_within_the_racy_window_is_not_recorded(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    if kind == "file":
        target = repo.root / "a.txt"
        _track(repo, "a.txt", "first")
        newest = os.stat(target)
    else:
        target = repo.root / "d"
        target.mkdir()
        (target / "f.txt").write_text("in a folder")
        repo.track(target)
        newest = os.stat(target / "f.txt")
    stamp = max(newest.st_mtime_ns, newest.st_ctime_ns)
    monkeypatch.setattr(workspace_index, "_now", lambda: stamp + 1)
    assert [r.status for r in repo.status()] == ["ok"]
    assert repo.state.get_many([workspace_index._key(target)]) == [None]
    monkeypatch.setattr(workspace_index, "_now", lambda: stamp + RACY_NS)
    assert [r.status for r in repo.status()] == ["ok"]
    assert unpack(repo.state.get_many([workspace_index._key(target)])[0]) is not None
