"""Issue 12 item 3: the store remembers which objects came from a remote."""

from __future__ import annotations

from pathlib import Path

from pivot_store import transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.hashing import hash_bytes
from pivot_store.lockfile import FingerprintParts, Lock
from pivot_store.objects import ObjectStore
from pivot_store.remote import open_remote
from pivot_store.repo import Repo


def _store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "cache" / "files")


def test_downloaded_bytes_are_marked_until_produced_here(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = b"bytes a remote sent"
    oid = hash_bytes(data)
    assert store.insert_bytes(data, oid, source="test")
    assert store.from_remote(oid)
    assert (tmp_path / "cache" / "from-remote" / oid[:2] / oid[2:]).is_file()
    assert not store.insert_bytes(data, oid, source="again")  # present: stays marked
    assert store.from_remote(oid)
    assert store.add_bytes(data).oid == oid  # this machine wrote the same bytes
    assert not store.from_remote(oid)


def test_a_download_of_a_local_object_leaves_it_local(tmp_path: Path) -> None:
    store = _store(tmp_path)
    oid = store.add_bytes(b"made here").oid
    assert not store.insert_bytes(b"made here", oid, source="test")
    assert not store.from_remote(oid)


def test_a_large_download_is_marked_and_removal_forgets_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    tmp = tmp_path / "dl"
    tmp.write_bytes(b"x" * 1000)
    oid = hash_bytes(b"x" * 1000)
    assert store.insert_verified(tmp, oid, source="test")
    assert store.from_remote(oid)
    store.remove(oid)
    assert not store.from_remote(oid)


def test_a_local_add_of_a_file_clears_the_mark(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = b"same bytes" * 10
    oid = hash_bytes(data)
    store.insert_bytes(data, oid, source="test")
    src = tmp_path / "f"
    src.write_bytes(data)
    assert store.add_file(src).oid == oid
    assert not store.from_remote(oid)


def test_fetch_marks_every_object_it_brings_manifests_and_files(tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    a = Repo.open(tmp_path / "a")
    cfg = Config(remotes={"origin": RemoteConfig(url=f"file://{remote_dir}")})
    a.save_config(cfg)
    folder = a.root / "out"
    folder.mkdir()
    (folder / "f.txt").write_text("file")
    rec = a.add_path(folder)
    lock = Lock.build("out", FingerprintParts(), [rec.replace(name="out", path="out")])
    assert transfer.push(a.objects, open_remote(a.config, "origin"), [lock]).ok
    b = Repo.open(tmp_path / "b")
    b.save_config(cfg)
    assert transfer.fetch(b.objects, open_remote(b.config, "origin"), [lock]).ok
    oids = b.output_oids(lock.outputs[0])
    assert len(oids) == 2 and all(b.objects.from_remote(o) for o in oids)
    assert not any(a.objects.from_remote(o) for o in oids)
