"""The fetch write path (issue 17): big objects are hashed and written off the event
loop, every object still hash-checked before it enters the cache (contract line 3),
and with `fsync` on a fetched object's bytes are on disk before its name is.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pivot_store import atomic, download, transfer
from pivot_store.config import RemoteConfig
from pivot_store.errors import CorruptObject
from pivot_store.hashing import hash_bytes
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.objects import ObjectStore
from pivot_store.remote import Remote, open_remote

BIG = download.WRITE_OFF_LOOP + 12345


def _store(root: Path, fsync: bool = False) -> ObjectStore:
    return ObjectStore(root / ".pivot" / "cache" / "files", fsync=fsync)


def _lock(name: str, oid: str, size: int) -> Lock:
    return Lock.build(name, FingerprintParts(code_version="1"), [OutputRecord(hash=oid, size=size)])


@pytest.fixture
def folder_remote(tmp_path: Path) -> Remote:
    return open_remote(remote=RemoteConfig(url=(tmp_path / "remote").as_uri()), name="r")


def _pushed(tmp_path: Path, remote: Remote, blobs: dict[str, bytes]) -> list[Lock]:
    src = _store(tmp_path / "src")
    locks = [_lock(name, src.add_bytes(b).oid, len(b)) for name, b in blobs.items()]
    assert transfer.push(src, remote, locks, run_cache=False).ok
    return locks


def test_a_big_object_is_checked_and_written_off_the_loop_a_small_one_on_it(
    tmp_path: Path, folder_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    big, small = os.urandom(BIG), b"small" * 100
    locks = _pushed(tmp_path, folder_remote, {"big": big, "small": small})
    loop_threads: set[int] = set()
    wrote: dict[int, int] = {}  # size -> thread that hashed and wrote it
    get, insert, verified = Remote.aget_bytes, ObjectStore.insert_bytes, ObjectStore.insert_verified

    async def aget_bytes(self: Remote, key: str) -> bytes:
        loop_threads.add(threading.get_ident())
        return await get(self, key)

    def insert_bytes(self: ObjectStore, data: bytes, expected: str, *, source: str = "") -> bool:
        wrote[len(data)] = threading.get_ident()
        return insert(self, data, expected, source=source)

    def insert_verified(self: ObjectStore, tmp: Path, expected: str, *, source: str = "") -> bool:
        wrote[os.stat(tmp).st_size] = threading.get_ident()  # a big one, streamed to a file
        return verified(self, tmp, expected, source=source)

    monkeypatch.setattr(type(folder_remote), "aget_bytes", aget_bytes)
    monkeypatch.setattr(ObjectStore, "insert_bytes", insert_bytes)
    monkeypatch.setattr(ObjectStore, "insert_verified", insert_verified)
    fresh = _store(tmp_path / "b")
    res = transfer.fetch(fresh, folder_remote, locks)
    assert res.ok, res.failed
    assert len(loop_threads) == 1
    assert wrote[len(big)] not in loop_threads  # the loop kept receiving meanwhile
    assert wrote[len(small)] in loop_threads  # a thread hop would cost more than the write
    assert fresh.read_bytes(locks[0].outputs[0].hash) == big
    assert fresh.from_remote(locks[0].outputs[0].hash)  # provenance marked as before


def test_a_tampered_big_object_is_refused_on_the_worker_and_nothing_is_kept(
    tmp_path: Path, folder_remote: Remote
) -> None:
    """Contract line 3 on the off-loop path: the mismatch names the object, no temp stays."""
    big = os.urandom(BIG)
    locks = _pushed(tmp_path, folder_remote, {"big": big})
    victim = locks[0].outputs[0].hash
    path = Path(folder_remote.object_key(victim))
    os.chmod(path, 0o644)
    path.write_bytes(big[:-1] + bytes([big[-1] ^ 1]))  # same size, one bit flipped
    fresh = _store(tmp_path / "b")
    res = transfer.fetch(fresh, folder_remote, locks)
    assert victim in res.failed and victim in res.failed[victim]
    assert not fresh.exists(victim)
    assert not list(fresh.tmp_dir.glob("*"))
    assert not fresh.from_remote(victim)


def _record_fsync_then_link(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Each fsync (of the path behind the fd) and link (of its source), in order."""
    events: list[tuple[str, str]] = []
    fsync, link = os.fsync, os.link

    def rec_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def rec_link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("link", os.fspath(src)))
        link(src, dst)

    monkeypatch.setattr(os, "fsync", rec_fsync)
    monkeypatch.setattr(os, "link", rec_link)
    return events


def test_with_fsync_on_fetched_bytes_are_synced_before_they_get_their_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durability of a fetch as of a local add: temp, fsync, link (both download paths)."""
    store = _store(tmp_path, fsync=True)
    events = _record_fsync_then_link(monkeypatch)
    data = b"downloaded"
    assert store.insert_bytes(data, hash_bytes(data), source="test")
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_name(store.tmp_dir, ".pull")
    tmp.write_bytes(b"ranged download")
    assert store.insert_verified(tmp, hash_bytes(b"ranged download"), source="test")
    links = [p for kind, p in events if kind == "link"]
    assert len(links) == 2
    for temp in links:
        at = events.index(("link", temp))
        assert ("fsync", temp) in events[:at], (temp, events)


def test_with_fsync_off_a_fetch_syncs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, fsync=False)
    events = _record_fsync_then_link(monkeypatch)
    assert store.insert_bytes(b"x" * 10, hash_bytes(b"x" * 10))
    assert [kind for kind, _ in events] == ["link"]


def test_insert_bytes_refuses_a_mismatch_before_writing(tmp_path: Path) -> None:
    store = _store(tmp_path, fsync=True)
    with pytest.raises(CorruptObject, match="0123456789abcdef"):
        store.insert_bytes(b"not that", "0123456789abcdef", source="test")
    assert not list(store.tmp_dir.glob("*")) and not store.exists("0123456789abcdef")


def test_concurrent_fetches_in_one_process_lose_no_known_index_update(
    tmp_path: Path, folder_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prefetch runs many fetches at once: each one's objects stay known on the
    remote (else a push of those hits asks the remote again)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pivot_store.remote_index import KnownIndex

    locks = _pushed(tmp_path, folder_remote, {f"l{i}": f"value {i}".encode() for i in range(4)})
    load = KnownIndex.load

    def slow_load(self: KnownIndex) -> set[str]:
        found = load(self)
        time.sleep(0.05)  # every fetch reads the index before any writes it back
        return found

    monkeypatch.setattr(KnownIndex, "load", slow_load)
    fresh = _store(tmp_path / "b")
    with ThreadPoolExecutor(len(locks)) as pool:
        results = list(pool.map(lambda lk: transfer.fetch(fresh, folder_remote, [lk]), locks))
    assert all(r.ok for r in results)
    known = load(KnownIndex(fresh.root, folder_remote.identity))
    assert {lk.outputs[0].hash for lk in locks} <= known
