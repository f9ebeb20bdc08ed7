"""Directory manifests: canonical, deduplicated, and hostile ones refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pivot_store.errors import ManifestError, PivotError, TrackError
from pivot_store.hashing import canonical_json
from pivot_store.lockfile import read_lock
from pivot_store.manifest import Entry, Manifest, build, read_manifest
from pivot_store.objects import ObjectStore
from pivot_store.repo import Repo
from pivot_store.state import NullState


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "cache" / "files")


def _tree(root: Path) -> Path:
    (root / "b" / "c").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b" / "c" / "d.txt").write_text("d")
    (root / "e").mkdir()
    return root


def test_manifest_is_canonical_and_names_dirs(store: ObjectStore, tmp_path: Path) -> None:
    m = build(_tree(tmp_path / "t"), store, NullState())
    doc = json.loads(store.read_bytes(m.oid()))
    assert doc["version"] == 1
    assert [e["path"] for e in doc["entries"]] == ["a.txt", "b/c/d.txt", "e"]
    assert doc["entries"][2] == {"path": "e", "dir": True}
    assert m.oid().endswith(".dir") and store.exists(m.oid())
    assert read_manifest(store, m.oid()) == Manifest(tuple(sorted(m.entries, key=lambda e: e.path)))
    assert build(tmp_path / "t", None, NullState()).oid() == m.oid()  # hashing alone agrees


def test_unchanged_files_are_shared_between_versions(store: ObjectStore, tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    v1 = build(root, store, NullState())
    (root / "a.txt").write_text("changed")
    v2 = build(root, store, NullState())
    assert v1.oid() != v2.oid()
    shared = {e.hash for e in v1.files()} & {e.hash for e in v2.files()}
    assert len(shared) == 1
    assert len(list(store.iter_oids())) == 5  # 3 file objects + 2 manifests


def test_symlinks_in_a_tracked_folder(store: ObjectStore, tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    (root / "inside").symlink_to(root / "a.txt")
    m = build(root, store, NullState())
    assert any(e.path == "inside" for e in m.entries)  # followed: stays in the tree
    secret = tmp_path / "secret"
    secret.write_text("outside")
    (root / "leak").symlink_to(secret)
    with pytest.raises(TrackError, match="outside the tracked folder") as e:
        build(root, store, NullState())
    assert isinstance(e.value, PivotError) and "leak" in str(e.value)


@pytest.mark.parametrize(
    "doc",
    [
        {"version": 1, "entries": [{"path": "../../x", "hash": "0123456789abcdef", "size": 1}]},
        {"version": 1, "entries": [{"path": "/etc/passwd", "hash": "0123456789abcdef", "size": 1}]},
        {"version": 1, "entries": [{"path": "a\\b", "hash": "0123456789abcdef", "size": 1}]},
        {"version": 1, "entries": [{"path": "x", "hash": "../../../etc", "size": 1}]},
        {"version": 1, "entries": [{"path": "x", "hash": "0123456789abcdef", "size": -1}]},
        {"version": 1, "entries": [{"path": "x"}]},
        {"version": 1, "entries": ["x"]},
        {"version": 2, "entries": []},
        ["not", "a", "manifest"],
    ],
)
def test_hostile_manifests_are_refused(store: ObjectStore, doc) -> None:
    oid = store.add_bytes(canonical_json(doc), suffix=".dir").oid
    with pytest.raises(ManifestError, match=oid):
        read_manifest(store, oid)


def test_entries_sort_and_sizes() -> None:
    m = Manifest(
        (Entry("b", "0123456789abcdef", 3), Entry("a", None), Entry("c", "f" * 16, 4, True))
    )
    assert m.size == 7 and len(list(m.files())) == 2
    assert Manifest(tuple(reversed(m.entries))).oid() == m.oid()


def test_a_checkouts_temp_file_in_the_folder_is_not_its_content(repo, cli) -> None:
    """`pivot add` of a folder another process is checking out must not record
    the checkout's file under its temp name (CI once found one in a lock)."""
    from pivot_store import atomic

    folder = repo.root / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("a")
    (folder / ".tmp-notes").write_text("the user's")  # not a name pivot makes
    assert cli("add", "data")[0] == 0
    before = read_lock(repo.lock_path("data")).outputs[0].hash
    for temp in (atomic.temp_name(folder), Path(atomic.fast_temp_name(str(folder)))):
        temp.write_text("a")  # a checkout's file, not yet renamed to its name
    assert [r.status for r in Repo(repo.root).status()] == ["ok"]
    assert cli("add", "data")[0] == 0
    lock = read_lock(repo.lock_path("data"))
    assert lock.outputs[0].hash == before
    paths = [e.path for e in repo.manifest(before).entries]
    assert paths == [".tmp-notes", "a.csv"]
