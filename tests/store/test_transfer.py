"""Push and fetch, as one contract suite over memory://, file:// and moto S3.

Contract lines proved here: 2 (nothing on a remote is overwritten), 3 (every
object from a remote is hash-checked before it enters the cache; a mismatch is
refused and nothing is kept), and the push order (files, manifests, entries).
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from pivot_store import oid as oids
from pivot_store import run_lookup, transfer
from pivot_store.config import RemoteConfig
from pivot_store.errors import RemoteError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.manifest import build as build_manifest
from pivot_store.manifest import read_manifest
from pivot_store.objects import ObjectStore
from pivot_store.remote import MULTIPART_CHUNK, Remote, open_remote
from pivot_store.remote_index import KnownIndex
from pivot_store.state import NullState


# --- helpers -------------------------------------------------------------------
def make_store(tmp: Path) -> ObjectStore:
    return ObjectStore(tmp / ".pivot" / "cache" / "files")


def file_lock(objects: ObjectStore, name: str, data: bytes, code: str = "1") -> Lock:
    added = objects.add_bytes(data)
    out = OutputRecord(hash=added.oid, size=added.size)
    return Lock.build(name, FingerprintParts(code_version=code), [out])


def dir_lock(objects: ObjectStore, tmp: Path, name: str, n: int = 30) -> Lock:
    folder = tmp / f"src-{uuid.uuid4().hex[:6]}"
    (folder / "sub").mkdir(parents=True)
    (folder / "empty").mkdir()
    for i in range(n):
        (folder / ("sub" if i % 3 else ".") / f"f{i}.txt").write_bytes(f"{name} {i}\n".encode())
    manifest = build_manifest(folder, objects, NullState())
    out = OutputRecord(hash=manifest.oid(), size=manifest.size, kind="dir", path="data")
    return Lock.build(name, FingerprintParts(code_version="1"), [out])


def all_oids(objects: ObjectStore, locks: list[Lock]) -> set[str]:
    found = set()
    for lock in locks:
        for out in lock.outputs:
            found.add(out.hash)
            if oids.is_dir(out.hash):
                found |= {e.hash for e in read_manifest(objects, out.hash).files()}
    return found


def remote_has(remote: Remote, oid: str) -> bool:
    return remote.exists(remote.object_key(oid))


@pytest.fixture
def populated(tmp_path: Path) -> tuple[ObjectStore, list[Lock]]:
    objects = make_store(tmp_path / "a")
    locks = [
        file_lock(objects, "tables/one", b"one" * 1000),
        file_lock(objects, "tables/empty", b""),
        dir_lock(objects, tmp_path, "folders/many", n=40),
    ]
    return objects, locks


# --- the contract suite ----------------------------------------------------------
def test_push_then_fetch_into_empty_cache(remote: Remote, populated, tmp_path: Path) -> None:
    objects, locks = populated
    res = transfer.push(objects, remote, locks, jobs=4)
    assert res.ok, res.failed
    wanted = all_oids(objects, locks)
    assert set(res.transferred) == wanted
    assert len(res.entries) == len(locks)
    fresh = make_store(tmp_path / "b")
    got = transfer.fetch(fresh, remote, locks, jobs=4)
    assert got.ok, got.failed
    assert set(got.transferred) == wanted
    for o in wanted:
        assert fresh.verify(o)
        assert fresh.read_bytes(o) == objects.read_bytes(o)
    assert sorted(got.complete_locks) == sorted(lock.name for lock in locks)
    # Nothing left in the temp folder, nothing new on a second fetch.
    assert not list(fresh.tmp_dir.glob("*"))
    again = transfer.fetch(fresh, remote, locks, jobs=4)
    assert again.transferred == [] and again.ok


def test_dry_run_sends_nothing(remote: Remote, populated) -> None:
    objects, locks = populated
    res = transfer.push(objects, remote, locks, dry_run=True)
    assert res.transferred == [] and res.entries == []
    assert {i.oid for i in res.planned} == all_oids(objects, locks)
    assert next(i for i in res.planned if i.oid == locks[0].outputs[0].hash).locks == {"tables/one"}
    assert not any(remote_has(remote, o) for o in all_oids(objects, locks))
    assert list(run_lookup.lookup(remote, locks[0].name, locks[0].fingerprint)) == []


def test_existing_objects_are_not_uploaded_again(remote: Remote, populated) -> None:
    """Contract line 2: a pre-existing remote object is skipped, not rewritten."""
    objects, locks = populated
    first = locks[0].outputs[0].hash
    transfer.push(objects, remote, locks[:1])
    before = remote.get_bytes(remote.object_key(first))
    res = transfer.push(objects, remote, locks)
    assert first in res.present and first not in res.transferred
    assert remote.get_bytes(remote.object_key(first)) == before
    noop = transfer.push(objects, remote, locks)
    assert noop.transferred == [] and noop.entries == [] and noop.ok


def test_remote_object_is_never_replaced(remote: Remote, tmp_path: Path) -> None:
    """A put onto an existing key is refused by the backend itself (create-only)."""
    key = remote.key("files/00/00000000000000")
    src = tmp_path / "x"
    src.write_bytes(b"first")
    assert remote.put_file(src, key) is True
    src2 = tmp_path / "y"
    src2.write_bytes(b"second")
    assert remote.put_file(src2, key) is False
    assert remote.get_bytes(key) == b"first"
    assert remote.put_bytes(key, b"third") is False
    assert remote.get_bytes(key) == b"first"


#: (what, size): one PUT, the bytes face (run-cache entries), and an object big
#: enough to go multipart on S3 (two parts or more, like transfer's large objects).
CREATES = [("single", 70_000), ("bytes", 3_000), ("multipart", 2 * MULTIPART_CHUNK + 1234)]


def _race_to_create(remote: Remote, key: str, what: str, payloads: list[bytes], tmp: Path):
    """Two creators of `key` released at once; returns each one's result or exception."""
    srcs = []
    for i, data in enumerate(payloads):
        srcs.append(tmp / f"{what}-{i}")
        srcs[-1].write_bytes(data)
    start = threading.Barrier(len(payloads))
    results: list[object] = [None] * len(payloads)

    def create(i: int) -> None:
        start.wait()
        try:
            if what == "bytes":
                results[i] = remote.put_bytes(key, payloads[i])
            else:
                results[i] = remote.put_file(srcs[i], key)
        except BaseException as e:  # reported, not raised in the thread
            results[i] = e

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_creators_of_one_key_one_wins(remote: Remote, tmp_path: Path) -> None:
    """Contract line 2 under a race: two writers create the same key at the same moment.

    Exactly one wins (True), the other is told "already present" (False), neither
    errors, and the remote holds the winner's complete bytes, for a single PUT, a
    bytes PUT and a multipart upload.
    """
    rng = random.Random(12)
    problems = []
    for what, size in CREATES:
        for round_ in range(3 if what == "multipart" else 10):
            key = remote.key(f"race/{what}/{round_}")
            payloads = [rng.randbytes(size) for _ in range(2)]
            results = _race_to_create(remote, key, what, payloads, tmp_path)
            if sorted(map(repr, results)) != ["False", "True"]:
                problems.append(f"{what} round {round_}: results {results}")
                continue
            stored = remote.get_bytes(key)
            if stored != payloads[results.index(True)]:
                whose = "the loser's" if stored == payloads[results.index(False)] else "torn"
                problems.append(f"{what} round {round_}: stored bytes are {whose}")
    assert problems == [], problems


def test_tampered_remote_object_is_refused(remote: Remote, populated, tmp_path: Path) -> None:
    """Contract line 3: a mismatch names object and remote; nothing is kept."""
    objects, locks = populated
    transfer.push(objects, remote, locks)
    victim = locks[0].outputs[0].hash
    _overwrite(remote, victim, b"evil bytes")
    fresh = make_store(tmp_path / "b")
    res = transfer.fetch(fresh, remote, locks)
    assert not res.ok
    assert victim in res.failed
    assert victim in res.failed[victim] and "origin" in res.failed[victim]
    assert not fresh.exists(victim)
    assert not list(fresh.tmp_dir.glob("*"))
    # The other objects still arrived.
    assert "folders/many" in res.complete_locks and "tables/one" not in res.complete_locks
    with pytest.raises(Exception, match=victim):
        res.raise_for_failures()


def test_tampered_manifest_is_refused(remote: Remote, populated, tmp_path: Path) -> None:
    objects, locks = populated
    transfer.push(objects, remote, locks)
    manifest = locks[2].outputs[0].hash
    _overwrite(remote, manifest, b'{"entries":[],"version":1}')
    fresh = make_store(tmp_path / "b")
    res = transfer.fetch(fresh, remote, locks)
    assert manifest in res.failed and not fresh.exists(manifest)
    assert "folders/many" not in res.complete_locks


def test_push_of_missing_local_object_is_an_error(remote: Remote, populated) -> None:
    objects, locks = populated
    gone = locks[0].outputs[0].hash
    objects.remove(gone)
    res = transfer.push(objects, remote, locks)
    assert gone in res.failed and "not in the local cache" in res.failed[gone]
    assert not res.ok
    # The broken lock gets no run-cache entry; the others are published.
    assert list(run_lookup.lookup(remote, locks[0].name, locks[0].fingerprint)) == []
    assert list(run_lookup.lookup(remote, locks[1].name, locks[1].fingerprint))


def test_fetch_of_object_missing_on_remote_names_it(remote: Remote, populated, tmp_path) -> None:
    objects, locks = populated
    transfer.push(objects, remote, locks[1:])
    res = transfer.fetch(make_store(tmp_path / "b"), remote, locks)
    assert res.failed == {locks[0].outputs[0].hash: "not on the remote"}


def test_status_reports_both_sides(remote: Remote, populated, tmp_path: Path) -> None:
    objects, locks = populated
    st = transfer.compare(objects, remote, locks)
    assert {o for _, o in st.missing_on_remote} == all_oids(objects, locks)
    assert st.missing_locally == []
    transfer.push(objects, remote, locks)
    assert transfer.compare(objects, remote, locks).in_sync
    fresh = make_store(tmp_path / "b")
    st = transfer.compare(fresh, remote, locks)
    assert {o for _, o in st.missing_locally} == all_oids(objects, locks)
    assert st.missing_on_remote == []


def _overwrite(remote: Remote, oid: str, data: bytes) -> None:
    """Tamper behind pivot's back (pivot itself never replaces)."""
    key = remote.object_key(oid)
    if remote.kind == "local":
        os.chmod(key, 0o644)
        Path(key).write_bytes(data)
    else:
        remote.fs.pipe_file(key, data)


# --- S3 specifics -------------------------------------------------------------------
def test_large_object_goes_multipart_and_back(s3_remote_config: dict[str, Any], tmp_path) -> None:
    from pivot_store import remote as remote_mod

    remote = open_remote(remote=RemoteConfig(**s3_remote_config), name="origin")
    objects = make_store(tmp_path / "a")
    data = os.urandom(2 * remote_mod.MULTIPART_CHUNK + 12345)
    lock = file_lock(objects, "big", data)
    assert transfer.push(objects, remote, [lock]).ok
    head = remote.fs.call_s3(
        "head_object",
        **dict(
            zip(("Bucket", "Key"), remote._bk(remote.object_key(lock.outputs[0].hash)), strict=True)
        ),
    )
    assert "-" in head["ETag"]  # a multipart ETag
    fresh = make_store(tmp_path / "b")
    assert transfer.fetch(fresh, remote, [lock]).ok
    assert fresh.verify(lock.outputs[0].hash)


def test_faulty_remote_still_completes(s3_bucket: str, faulty_proxy, tmp_path: Path) -> None:
    """1 request in 5 fails (500, 503 SlowDown, reset before/after): all objects intact."""
    from tests.fixtures.s3 import remote_options

    cfg = RemoteConfig(url=f"s3://{s3_bucket}/store", **remote_options(faulty_proxy.url))
    remote = open_remote(remote=cfg, name="flaky")
    objects = make_store(tmp_path / "a")
    locks = [file_lock(objects, f"t/{i}", os.urandom(2048)) for i in range(15)]
    locks.append(dir_lock(objects, tmp_path, "d", n=30))
    res = transfer.push(objects, remote, locks, jobs=8)
    assert res.ok, res.failed
    fresh = make_store(tmp_path / "b")
    got = transfer.fetch(fresh, remote, locks, jobs=8)
    assert got.ok, got.failed
    for o in all_oids(objects, locks):
        assert fresh.verify(o)
    assert sum(faulty_proxy.faults.values()) >= 10
    assert all(faulty_proxy.faults.values())


def test_missing_bucket_is_one_clear_error(s3_server, tmp_path: Path) -> None:
    from tests.fixtures.s3 import remote_options

    cfg = RemoteConfig(
        url="s3://no-such-bucket-pivot/store", **remote_options(s3_server.endpoint_url)
    )
    remote = open_remote(remote=cfg, name="origin")
    objects = make_store(tmp_path)
    with pytest.raises(RemoteError, match=r"no-such-bucket-pivot.*does not exist"):
        transfer.push(objects, remote, [file_lock(objects, "x", b"x")])
    with pytest.raises(RemoteError, match="does not exist"):
        transfer.fetch(objects, remote, [file_lock(objects, "x", b"x")])


def test_noop_push_makes_no_request_and_verify_remote_repairs(
    s3_bucket: str, make_faulty_proxy, s3_server, tmp_path: Path
) -> None:
    """The known-on-remote index settles a no-op push with zero requests; it can be
    wrong only if someone deletes behind pivot's back, and --verify-remote repairs that."""
    from tests.fixtures.s3 import remote_options

    proxy = make_faulty_proxy(every=0)  # a counting proxy, no faults
    cfg = RemoteConfig(url=f"s3://{s3_bucket}/store", **remote_options(proxy.url))
    objects = make_store(tmp_path / "a")
    locks = [file_lock(objects, "t", b"table" * 100), dir_lock(objects, tmp_path, "d", n=40)]
    assert transfer.push(objects, open_remote(remote=cfg, name="o"), locks).ok
    before = proxy.requests
    noop = transfer.push(objects, open_remote(remote=cfg, name="o"), locks)
    assert noop.ok and noop.transferred == [] and len(noop.present) == 40 + 2
    assert proxy.requests == before
    # Someone deletes a file and the manifest's sibling behind pivot's back.
    gone = read_manifest(objects, locks[1].outputs[0].hash).files().__next__().hash
    s3_server.client().delete_object(Bucket=s3_bucket, Key=f"store/files/{oids.relpath(gone)}")
    remote = open_remote(remote=cfg, name="o")
    assert transfer.push(objects, remote, locks).transferred == []  # trusted: index
    fixed = transfer.push(objects, remote, locks, verify_remote=True)
    assert fixed.ok and fixed.transferred == [gone]
    assert remote_has(remote, gone)


def test_remote_manifest_vouches_for_its_files(s3_remote_config, tmp_path: Path) -> None:
    """Without the index, a manifest on the remote stands for its files: one check, not 40."""
    remote = open_remote(remote=RemoteConfig(**s3_remote_config), name="o")
    objects = make_store(tmp_path / "a")
    locks = [dir_lock(objects, tmp_path, "d", n=40)]
    assert transfer.push(objects, remote, locks).ok
    for p in (tmp_path / "a" / ".pivot" / "cache" / "remotes").glob("*"):
        p.unlink()
    noop = transfer.push(objects, remote, locks)
    assert noop.ok and noop.transferred == [] and len(noop.present) == 41


def test_push_verifies_the_remote_when_the_last_check_is_too_old(tmp_path: Path) -> None:
    """Issue 12 item 7: `verify_every` (the push sensor's `verify_remote_every`)."""
    cfg = RemoteConfig(url=f"file://{tmp_path}/remote")
    objects = make_store(tmp_path / "a")
    lock = file_lock(objects, "t", b"table" * 100)
    remote = open_remote(remote=cfg, name="o")
    assert transfer.push(objects, remote, [lock], verify_every=3600).ok  # never verified: checks
    key = Path(remote.object_key(lock.outputs[0].hash))
    key.unlink()  # deleted behind pivot's back
    assert transfer.push(objects, remote, [lock], verify_every=3600).transferred == []
    assert not key.exists()  # within the interval the index is trusted
    again = transfer.push(objects, remote, [lock], verify_every=0)
    assert again.transferred == [lock.outputs[0].hash] and key.exists()


def test_fetch_keeps_the_index_when_a_missing_object_was_never_claimed(
    remote: Remote, populated, tmp_path: Path
) -> None:
    """Only a miss the index claimed drops it; an object never pushed is just missing."""
    objects, locks = populated
    assert transfer.push(objects, remote, locks[:1]).ok
    index = KnownIndex(objects.root, remote.identity)
    before = index.load()
    other = make_store(tmp_path / "b")
    never = file_lock(other, "never", b"never pushed")
    assert transfer.fetch(objects, remote, [never]).failed
    assert index.load() == before
