"""Issue 12, store level: a shared remote is untrusted, and pivot's view of it can go stale.

Hostile or out-of-band changes are made the way anyone with access to the
bucket or folder makes them (raw files, raw `put_object`/`delete_object` on
moto, see tests/fixtures/raw_remote.py), never through pivot's writers. Each
test of an issue 12 item failed on 9b629a1 by its main assertion and passes
now that the item is fixed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xxhash

from pivot_store.errors import RemoteError
from pivot_store.remote import from_url
from pivot_store.repo import Repo
from pivot_store.transfer import fetch, push
from tests.fixtures.conflict_proxy import ConflictProxy
from tests.fixtures.raw_remote import RawRemote, make_raw_remote, object_rel
from tests.fixtures.s3 import S3Server, moto_process, remote_options


@pytest.fixture(params=["file", "s3"])
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> RawRemote:
    """A fresh folder or moto remote, with an attacker's raw access to it."""
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_raw_remote(request.param, tmp_path, server)


@pytest.fixture(scope="module")
def other_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A second, independent moto (its own process, so its own buckets)."""
    with moto_process(tmp_path_factory.mktemp("moto-other")) as server:
        yield server


def _track(repo: Repo, name: str, data: bytes) -> Any:
    (repo.root / name).write_bytes(data)
    return repo.track(repo.root / name)


def _drop_local_object(repo: Repo, data: bytes) -> None:
    """The object leaves this cache (gc, a lost disk): a raw unlink of `cache/files/ab/cd...`."""
    path = repo.root / ".pivot" / "cache" / object_rel(data)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.unlink()


# --- item 7: the known-on-remote index ------------------------------------------
def test_known_index_is_per_endpoint_not_per_url(
    project: Path, s3_server: S3Server, other_s3_server: S3Server
) -> None:
    """Same `s3://bucket/prefix` on two endpoints: two remotes, two indexes."""
    bucket = s3_server.make_bucket("same")
    other_s3_server.client().create_bucket(Bucket=bucket)
    repo = Repo.init(project)
    data = b"one object, two endpoints\n" * 4
    lock = _track(repo, "data.bin", data)
    url = f"s3://{bucket}/store"
    first = from_url(url, remote_options(s3_server.endpoint_url), name="first")
    second = from_url(url, remote_options(other_s3_server.endpoint_url), name="second")
    push(repo.objects, first, [lock]).raise_for_failures()

    res = push(repo.objects, second, [lock])

    res.raise_for_failures()
    other = RawRemote("s3", {}, server=other_s3_server, bucket=bucket)
    assert other.exists(object_rel(data)), (
        f"push to {other_s3_server.endpoint_url} reported {res.summary()} "
        f"but the object is not there: {other.list('')}"
    )


def test_known_index_is_dropped_when_a_fetch_meets_a_missing_object(
    project: Path, raw: RawRemote
) -> None:
    """Objects deleted behind pivot's back: once a fetch sees it, push must upload again."""
    repo = Repo.init(project)
    x, y = b"x object\n" * 8, b"y object\n" * 8
    lx, ly = _track(repo, "x.bin", x), _track(repo, "y.bin", y)
    remote = from_url(raw.url, raw.options, name="origin")
    push(repo.objects, remote, [lx, ly]).raise_for_failures()
    assert raw.exists(object_rel(x)) and raw.exists(object_rel(y))
    # Out of band: someone empties the remote's files/ (raw deletes).
    for rel in raw.list("files"):
        raw.delete(f"files/{rel}")
    # This cache loses x, and a fetch meets the remote's missing copy.
    _drop_local_object(repo, x)
    got = fetch(repo.objects, remote, [lx])
    assert lx.outputs[0].hash in got.failed
    # x is produced again; push must now check the remote, not trust the old index.
    lx = repo.track(repo.root / "x.bin")
    assert repo.objects.exists(lx.outputs[0].hash)

    res = push(repo.objects, remote, [lx, ly])

    res.raise_for_failures()
    missing = [n for n, d in (("x", x), ("y", y)) if not raw.exists(object_rel(d))]
    assert not missing, f"push reported {res.summary()} but {missing} are not on the remote"


# --- item 8: 409 ConditionalRequestConflict -------------------------------------
def test_conditional_request_conflict_is_retried(
    project: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    """Two writers creating one key at once: S3 answers 409; the push retries and completes."""
    repo = Repo.init(project)
    locks = [_track(repo, f"f{i}.bin", f"object {i}\n".encode() * 8) for i in range(3)]
    proxy = ConflictProxy(s3_server.port, conflicts=1).start()
    try:
        remote = from_url(
            f"s3://{s3_bucket}/store", remote_options(proxy.url), name="origin", jobs=4
        )
        try:
            res = push(repo.objects, remote, locks)
        except RemoteError as e:
            pytest.fail(f"push aborted on a 409 ConditionalRequestConflict: {e}")
    finally:
        proxy.stop()
    assert proxy.answered, "the proxy never answered 409: the test proves nothing"
    assert res.ok, res.failed
    raw = RawRemote("s3", {}, server=s3_server, bucket=s3_bucket)
    for lock in locks:
        data = (repo.root / lock.outputs[0].path).read_bytes()
        assert raw.exists(object_rel(data)), lock.name
    entries = [k for k in raw.list("runs") if not k.endswith("/head.json")]
    assert len(entries) == len(locks)  # the run-cache entries got through too
    assert len(raw.list("runs")) == 2 * len(locks)  # and their heads


# --- item 10: the generic fsspec backends create by check-then-put ---------------
@pytest.mark.parametrize("how", ["put_bytes", "put_file"])
def test_generic_backend_create_is_exclusive(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    """Two creators of one key on memory://: exactly one writes, the other sees it present.

    The race window (between the existence check and the write) is held open
    by a barrier in fsspec's `MemoryFileSystem.exists`, so both creators are
    inside it at once on every round; pivot's code is not patched. A creator
    that never calls `exists`, or calls it under a lock, only meets the
    barrier's timeout.
    """
    from fsspec.implementations.memory import MemoryFileSystem

    root = f"hostile-race-{uuid.uuid4().hex[:8]}"
    remote = from_url(f"memory://{root}/store", name="mem")
    barrier: list[threading.Barrier] = []
    original = MemoryFileSystem.exists

    def exists(self: Any, path: str, **kw: Any) -> bool:
        found = original(self, path, **kw)
        if root in str(path) and barrier:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier[0].wait()
        return found

    monkeypatch.setattr(MemoryFileSystem, "exists", exists)
    for round_ in range(5):
        key = remote.key(f"runs/a/{round_:016x}/{round_:016x}.json")
        datas = [f'{{"writer":{i},"round":{round_}}}'.encode() for i in range(2)]
        barrier[:] = [threading.Barrier(2, timeout=1.0)]
        wrote = _create_at_once(remote, how, key, datas, tmp_path / f"round-{round_}")
        assert sorted(wrote) == [False, True], (
            f"round {round_}: both creators reported writing {key} ({wrote})"
        )
        assert remote.get_bytes(key) == datas[wrote.index(True)]


def _create_at_once(remote: Any, how: str, key: str, datas: list[bytes], tmp: Path) -> list[bool]:
    """Two threads create `key`, one with each of `datas`; what each create returned."""
    tmp.mkdir()
    sources = [tmp / f"src-{i}" for i in range(len(datas))]
    for src, data in zip(sources, datas, strict=True):
        src.write_bytes(data)
    wrote: list[bool] = [False] * len(datas)
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            if how == "put_bytes":
                wrote[i] = remote.put_bytes(key, datas[i])
            else:
                wrote[i] = remote.put_file(sources[i], key)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(datas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors
    return wrote


def test_preimage_helper_is_sound() -> None:
    """The forger the signed tests use really gives different bytes with the same xxh64."""
    from tests.fixtures.xxh64_preimage import second_preimage

    for n in (64, 65, 100, 160, 4096):
        original = os.urandom(n)
        forged = second_preimage(original, os.urandom(32))
        assert forged != original and len(forged) == n
        assert xxhash.xxh64(forged).hexdigest() == xxhash.xxh64(original).hexdigest()
