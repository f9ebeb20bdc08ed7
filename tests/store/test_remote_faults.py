"""Remote faults through a loopback proxy in front of moto (issue 7, "Faults and load").

Each transient fault (500, 503 SlowDown, reset before and after moto saw the
request, a stall longer than the read timeout, a truncated body) at one
request in five: push and fetch complete through retries. After every faulty
push the remote is read back directly (not through the proxy): every object
hashes to its name, and every run-cache entry names only objects that are
there and whole (objects before entries). After every faulty fetch the cache
holds only whole objects and no temp files. A permanent fault (403 on every
request, or on every PUT) fails at once with one clear line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pivot_store import oid as oids
from pivot_store import runcache, transfer
from pivot_store.config import RemoteConfig
from pivot_store.errors import RemoteError
from pivot_store.hashing import hash_bytes
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.manifest import Manifest
from pivot_store.manifest import build as build_manifest
from pivot_store.objects import ObjectStore
from pivot_store.remote import open_remote
from pivot_store.state import NullState
from tests.fixtures.s3 import S3Server, remote_options

#: Short socket timeouts so a stalled request turns into a retry within a second.
FAST_TIMEOUTS = {"connect_timeout": 1, "read_timeout": 1}


def make_locks(objects: ObjectStore, tmp: Path, tag: str, nfiles: int = 8, ndir: int = 24):
    locks = []
    for i in range(nfiles):
        added = objects.add_bytes(os.urandom(1500) + f"{tag}{i}".encode())
        out = OutputRecord(hash=added.oid, size=added.size)
        locks.append(Lock.build(f"t/{tag}/{i}", FingerprintParts(code_version="1"), [out]))
    folder = tmp / f"src-{tag}"
    folder.mkdir(parents=True)
    for i in range(ndir):
        (folder / f"f{i}.bin").write_bytes(os.urandom(700) + f"{tag}{i}".encode())
    m = build_manifest(folder, objects, NullState())
    out = OutputRecord(hash=m.oid(), size=m.size, kind="dir", path="data")
    locks.append(Lock.build(f"d/{tag}", FingerprintParts(code_version="1"), [out]))
    return locks


@functools.cache
def _client(endpoint_url: str) -> Any:
    return S3Server(endpoint_url, 0).client()


def remote_keys(server: S3Server, bucket: str, prefix: str = "store") -> list[str]:
    s3 = _client(server.endpoint_url)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def check_remote(server: S3Server, bucket: str, prefix: str = "store") -> tuple[int, int]:
    """Read the remote directly: whole objects only, and no entry without its objects.

    Returns (objects, entries) seen.
    """
    s3 = _client(server.endpoint_url)
    keys = remote_keys(server, bucket, prefix)
    objects: dict[str, bytes] = {}
    entries = []
    heads = []
    for key in keys:
        rel = key[len(prefix) + 1 :]
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if rel.startswith("files/"):
            oid = rel[len("files/") :].replace("/", "")
            actual = hash_bytes(data) + (oids.DIR_SUFFIX if oids.is_dir(oid) else "")
            assert actual == oid, f"remote object {key} hashes to {actual}"
            objects[oid] = data
        elif rel.startswith("runs/"):
            file = rel.rsplit("/", 1)[1]
            if runcache.is_head_name(file):  # a copy of an entry: checked, not counted
                heads.append(runcache.parse_entry(data, key))
                continue
            stem = file.removesuffix(runcache.SUFFIX)
            entries.append(runcache.parse_entry(data, key, expected_id=stem))
    for entry in entries + heads:
        for out in entry.lock.outputs:
            assert out.hash in objects, f"entry {entry.entry_id} names {out.hash}, not on remote"
            if oids.is_dir(out.hash):
                for e in Manifest.from_bytes(objects[out.hash], out.hash).files():
                    assert e.hash in objects, f"{out.hash} lists {e.hash}, not on remote"
    return len(objects), len(entries)


def check_cache(objects: ObjectStore) -> int:
    """Every object under a final name hashes right; no temp file is left behind."""
    n = 0
    for oid in objects.iter_oids():
        assert objects.verify(oid), f"cache object {oid} is corrupt"
        n += 1
    assert not [p for p in objects.tmp_dir.glob("*")] if objects.tmp_dir.exists() else True
    return n


def proxied_remote(proxy: Any, bucket: str, **extra: Any):
    cfg = RemoteConfig(
        url=f"s3://{bucket}/store", **remote_options(proxy.url), **FAST_TIMEOUTS, **extra
    )
    return open_remote(remote=cfg, name="flaky")


@pytest.mark.parametrize("mode", ["500", "503", "reset", "reset-after", "stall", "truncate"])
def test_transient_fault_push_and_fetch_complete(
    mode: str, make_faulty_proxy, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    proxy = make_faulty_proxy(every=5, modes=(mode,), stall=2.5)
    remote = proxied_remote(proxy, s3_bucket)
    objects = ObjectStore(tmp_path / "a" / "cache" / "files")
    locks = make_locks(objects, tmp_path, "x")
    res = transfer.push(objects, remote, locks, jobs=8)
    assert res.ok, res.failed
    # (A PUT that reached moto before a reset is refused on retry as "already
    # there", so res.entries may count fewer; the remote itself has them all.)
    n_obj, n_entries = check_remote(s3_server, s3_bucket)
    assert n_obj == 8 + 1 + 24 and n_entries == len(locks)
    fresh = ObjectStore(tmp_path / "b" / "cache" / "files")
    got = transfer.fetch(fresh, remote, locks, jobs=8)
    assert got.ok, got.failed
    assert check_cache(fresh) == n_obj
    assert proxy.faults[mode] >= 5, proxy.faults


def test_mixed_faults_never_leave_an_entry_without_its_objects(
    make_faulty_proxy, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """Several pushes through every fault at once: the remote is consistent after each."""
    modes = ("500", "503", "reset", "reset-after", "stall", "truncate")
    proxy = make_faulty_proxy(every=4, modes=modes, stall=2.0)
    remote = proxied_remote(proxy, s3_bucket)
    objects = ObjectStore(tmp_path / "a" / "cache" / "files")
    all_locks: list[Lock] = []
    for round_ in range(3):
        locks = make_locks(objects, tmp_path, f"r{round_}", nfiles=4, ndir=10)
        all_locks += locks
        res = transfer.push(objects, remote, all_locks, jobs=6)
        assert res.ok, res.failed
        check_remote(s3_server, s3_bucket)
    fresh = ObjectStore(tmp_path / "b" / "cache" / "files")
    assert transfer.fetch(fresh, remote, all_locks, jobs=6).ok
    check_cache(fresh)
    assert all(proxy.faults[m] for m in modes), proxy.faults


def test_access_denied_everywhere_fails_at_once(
    make_faulty_proxy, s3_bucket: str, tmp_path: Path
) -> None:
    proxy = make_faulty_proxy(every=1, modes=("403",))
    remote = proxied_remote(proxy, s3_bucket)
    objects = ObjectStore(tmp_path / "cache" / "files")
    locks = make_locks(objects, tmp_path, "x", nfiles=2, ndir=3)
    t0 = time.monotonic()
    with pytest.raises(RemoteError) as err:
        transfer.push(objects, remote, locks)
    with pytest.raises(RemoteError):
        transfer.fetch(ObjectStore(tmp_path / "b"), remote, locks)
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "\n" not in msg and "'flaky'" in msg and "denied" in msg
    assert proxy.requests <= 4  # no retry storm on a permanent error


def test_access_denied_on_put_stops_push_with_one_line(
    make_faulty_proxy, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """Reads allowed, writes denied (a read-only key): push stops, writes no entry."""
    proxy = make_faulty_proxy(every=1, modes=("403",), methods=("PUT", "POST"))
    remote = proxied_remote(proxy, s3_bucket)
    objects = ObjectStore(tmp_path / "cache" / "files")
    locks = make_locks(objects, tmp_path, "x", nfiles=3, ndir=20)
    with pytest.raises(RemoteError) as err:
        transfer.push(objects, remote, locks, jobs=4)
    assert "\n" not in str(err.value) and "denied" in str(err.value).lower()
    assert check_remote(s3_server, s3_bucket) == (0, 0)


def test_cli_push_denied_is_one_line(
    project: Path, make_faulty_proxy, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pivot_store.cli.app import main
    from pivot_store.config import Config, save_config

    proxy = make_faulty_proxy(every=1, modes=("403",), methods=("PUT",))
    assert main(["init"]) == 0
    (project / "t.csv").write_bytes(b"a\n1\n")
    assert main(["add", "t.csv"]) == 0
    cfg = RemoteConfig(url=f"s3://{s3_bucket}/store", **remote_options(proxy.url))
    save_config(project / ".pivot" / "config.yaml", Config(remotes={"o": cfg}, default_remote="o"))
    capsys.readouterr()
    assert main(["push"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "'o'" in err[0], err


def test_timeouts_are_configured(s3_remote_config: dict[str, Any]) -> None:
    """Defaults bound a stall; the options override them, on the real botocore client."""
    r = open_remote(remote=RemoteConfig(**s3_remote_config), name="o")
    r.check()  # a real request to moto: the client exists now
    config = r.fs.s3.meta.config
    assert config.read_timeout <= 60 and config.connect_timeout <= 30, config
    cfg = RemoteConfig(**s3_remote_config, read_timeout=2, connect_timeout=3)
    r2 = open_remote(remote=cfg, name="o")
    r2.check()
    assert (r2.fs.s3.meta.config.read_timeout, r2.fs.s3.meta.config.connect_timeout) == (2, 3)


@contextlib.contextmanager
def _stalling_endpoint(stage: str):
    """A loopback endpoint that stalls at `stage`: "read" accepts and never answers;
    "connect" never completes a handshake (its accept queue is full, so Linux drops
    the SYN)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    held: list[socket.socket] = []
    if stage == "read":
        srv.listen(8)

        def accept() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(srv.accept()[0])

        threading.Thread(target=accept, daemon=True).start()
    else:
        srv.listen(0)
        for _ in range(2):  # fill the queue; nobody ever accepts
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(srv.getsockname())
            held.append(c)
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        for c in [srv, *held]:
            c.close()


@pytest.mark.parametrize("stage", ["read", "connect"])
def test_a_stalled_connection_times_out_within_the_configured_timeout(stage: str) -> None:
    """One request (no retries) to an endpoint that stalls: it fails with a timeout
    after the configured 1 s, not the default (10 s connect, 30 s read)."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    with _stalling_endpoint(stage) as url:
        cfg = RemoteConfig(
            url="s3://stalled/store",
            **remote_options(url),
            **{f"{stage}_timeout": 1},
            config_kwargs={"retries": {"total_max_attempts": 1}},  # botocore: one try
        )
        r = open_remote(remote=cfg, name="stalled")
        r.fs.retries = 1  # s3fs: one try (pivot's own retries are not used here)
        outcome: list[Any] = []

        def one_request() -> None:
            t0 = time.monotonic()
            try:
                r.fs.call_s3("head_object", Bucket="stalled", Key="store/x")
            except Exception as e:
                outcome.append((time.monotonic() - t0, e))

        t = threading.Thread(target=one_request, daemon=True)
        t.start()
        t.join(timeout=8)
        assert outcome, f"no {stage} timeout within 8 s: the configured 1 s was not applied"
    elapsed, err = outcome[0]
    expected = ReadTimeoutError if stage == "read" else ConnectTimeoutError
    assert isinstance(err, expected), repr(err)
    assert 0.9 <= elapsed < 6, elapsed  # 1 s, not the default 10 s / 30 s (slack: a loaded CI)


@pytest.mark.parametrize("mode", ["truncate", "stall"])
def test_large_object_ranges_survive_faults(
    mode: str, make_faulty_proxy, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """A ranged GET cut short or stalled is fetched again; the object arrives whole."""
    from pivot_store.remote import MULTIPART_CHUNK

    objects = ObjectStore(tmp_path / "a" / "cache" / "files")
    added = objects.add_bytes(os.urandom(2 * MULTIPART_CHUNK + 4321))
    out = OutputRecord(hash=added.oid, size=added.size)
    lock = Lock.build("big", FingerprintParts(code_version="1"), [out])
    direct = RemoteConfig(url=f"s3://{s3_bucket}/store", **remote_options(s3_server.endpoint_url))
    assert transfer.push(objects, open_remote(remote=direct, name="o"), [lock]).ok
    proxy = make_faulty_proxy(every=2, modes=(mode,), stall=2.5, methods=("GET",))
    fresh = ObjectStore(tmp_path / "b" / "cache" / "files")
    got = transfer.fetch(fresh, proxied_remote(proxy, s3_bucket), [lock])
    assert got.ok, got.failed
    assert check_cache(fresh) == 1 and proxy.faults[mode] >= 1
