"""Group commit on a folder remote (`group_commit.publish`, `LocalRemote.aput_batch`).

On the real filesystem, no mock of `os`. What must hold (contract lines 1 and
2, and "reported written survives a crash"):

- no final name exists before the temp behind it was synced, and every name
  created is the inode that was synced (the observer is told by the code that
  syncs, so a batch that skipped the sync or linked first is caught);
- an existing name is never replaced, in a batch or between racing batches
  (one winner, the winner's bytes);
- a failure mid-batch (a real full tmpfs; a failed sync) leaves no final name
  over a partial file, no temp, and says what failed;
- a push keeps the order files, manifests, entries, batch by batch.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from pivot_store import fs_sync, group_commit, transfer
from pivot_store import oid as oids
from pivot_store.config import RemoteConfig
from pivot_store.errors import DiskFull
from pivot_store.remote import LocalRemote, open_remote
from tests.fixtures.parts import missing, require
from tests.store.test_transfer import all_oids, dir_lock, file_lock, make_store


@pytest.fixture(params=["syncfs", "fsync"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a batch is synced: syncfs (Linux >= 5.8) and the fsync-each fallback."""
    if request.param == "syncfs":
        require(fs_sync._STATE["fn"] is not None, "syncfs", "Linux 5.8 or later")
    else:
        monkeypatch.setitem(fs_sync._STATE, "fn", None)
    return str(request.param)


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


def _puts(root: Path, n: int, tag: bytes) -> list[tuple[str, bytes]]:
    return [(f"{root}/files/{i % 7:02x}/{i:014x}", tag + b" %d" % i * 50) for i in range(n)]


def test_no_name_before_its_temp_is_synced(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "remote"
    calls: list[str] = []  # the module's own sync calls, in order, beside the observer's stages
    real_syncfs, real_fsync = fs_sync.syncfs, fs_sync.fsync
    monkeypatch.setattr(fs_sync, "syncfs", lambda fd: calls.append("sync") or real_syncfs(fd))
    monkeypatch.setattr(fs_sync, "fsync", lambda fd: calls.append("sync") or real_fsync(fd))
    src = tmp_path / "src.bin"
    src.write_bytes(b"from a file" * 1000)
    puts: list[tuple[str, bytes | Path]] = [*_puts(root, 40, b"a")]
    puts.append((f"{root}/runs/x/y/fp/e.json", src))  # a fresh folder tree, and a file source
    events: list[tuple[str, list[str]]] = []
    synced: dict[int, int] = {}  # inode -> size when synced

    def observe(stage: str, paths: list[str]) -> None:
        events.append((stage, paths))
        calls.append(stage)
        if stage == "data":
            early = [k for k, _ in puts if os.path.lexists(k)]
            assert early == [], f"named before the sync: {early[:3]}"
            for p in paths:
                st = os.stat(p)
                synced[st.st_ino] = st.st_size

    with group_commit.observing(observe):
        outcomes = group_commit.publish(puts)
    assert outcomes == [True] * len(puts)
    assert [stage for stage, _ in events] == ["data", "names"]
    # Each stage comes after a sync of its own: one syncfs (one filesystem), or
    # an fsync of every temp before "data" and of every folder before "names".
    data, names = calls.index("data"), calls.index("names")
    if mode == "syncfs":
        assert calls == ["sync", "data", "sync", "names"], calls
    else:
        assert (
            data == len(puts)
            and names - data - 1 == 8
            and set(calls) - {"data", "names"} == {"sync"}
        )
    assert sorted(events[1][1]) == sorted(k for k, _ in puts)
    for key, data in puts:
        body = data.read_bytes() if isinstance(data, Path) else data
        st = os.stat(key)
        assert synced.get(st.st_ino) == len(body), f"{key} is not an inode the sync covered"
        assert Path(key).read_bytes() == body
        assert st.st_mode & 0o777 == 0o444 and st.st_nlink == 1
    assert _temps(root) == []


def test_batch_never_replaces_a_name(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "remote"
    puts = _puts(root, 10, b"new")
    first, taken = puts[3][0], puts[7][0]
    Path(taken).parent.mkdir(parents=True, exist_ok=True)
    Path(taken).write_bytes(b"already there")
    puts.append((first, b"a second put of one name in the same batch"))
    outcomes = group_commit.publish(puts)
    assert outcomes[7] is False and Path(taken).read_bytes() == b"already there"
    assert outcomes[3] is True and outcomes[-1] is False
    assert Path(first).read_bytes() == puts[3][1]
    assert outcomes.count(True) == 9
    assert _temps(root) == []


def test_racing_batches_one_winner_each_with_its_bytes(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "remote"
    remote = LocalRemote("origin", f"file://{root}", None, str(root))
    batches = [_puts(root, 300, tag) for tag in (b"left", b"right")]
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def push(i: int) -> None:
        start.wait()
        try:
            results[i] = remote.run(remote.aput_batch, batches[i])
        except BaseException as e:  # reported below, not lost in the thread
            results[i] = e

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    left, right = results
    assert isinstance(left, list) and isinstance(right, list), results
    problems = []
    for n, (a, b) in enumerate(zip(left, right, strict=True)):
        if sorted([a, b]) != [False, True]:
            problems.append(f"{n}: {a!r} {b!r}")
            continue
        winner = batches[0] if a is True else batches[1]
        if Path(winner[n][0]).read_bytes() != winner[n][1]:
            problems.append(f"{n}: not the winner's bytes")
    assert problems == []
    assert _temps(root) == []


@pytest.fixture
def small_fs(tmp_path: Path):
    """A real 1 MiB tmpfs (root and mount(8)), unmounted after."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    require(shutil.which("mount") is not None and os.geteuid() == 0, "root + tmpfs", "mount")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=False)
    if r.returncode != 0:
        missing("root + tmpfs", "cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_mid_batch(small_fs: Path, mode: str) -> None:
    """40 puts of 64 KiB onto 1 MiB: the first fit, the rest fail as DiskFull, none torn."""
    root = small_fs / "remote"
    puts = [(f"{root}/files/{i % 3:02x}/{i:014x}", bytes([i]) * (64 << 10)) for i in range(40)]
    outcomes = group_commit.publish(puts)
    fit = [i for i, o in enumerate(outcomes) if o is True]
    full = [o for o in outcomes if isinstance(o, BaseException)]
    assert 5 < len(fit) < 20 and len(fit) + len(full) == 40, outcomes
    assert all(isinstance(e, DiskFull) and "no space left" in str(e) for e in full), full[:2]
    for i, (key, data) in enumerate(puts):
        if i in fit:
            assert Path(key).read_bytes() == data
        else:
            assert not os.path.lexists(key)
    assert _temps(root) == []


def test_push_onto_a_full_folder_remote_reports_each_object(
    small_fs: Path, tmp_path: Path, mode: str
) -> None:
    objects = make_store(tmp_path / "a")
    locks = [file_lock(objects, f"t/{i}", os.urandom(100 << 10)) for i in range(20)]
    remote = open_remote(remote=RemoteConfig(url=f"file://{small_fs}/remote"), name="origin")
    res = transfer.push(objects, remote, locks)
    assert res.transferred and res.failed, (res.transferred, res.failed)
    assert all("no space left" in why for why in res.failed.values())
    for oid in res.transferred:  # what the push reports sent is whole under its name
        assert Path(remote.object_key(oid)).read_bytes() == objects.path(oid).read_bytes()
    for what in res.failed:  # objects, and entries (runs/...) that no longer fit either
        key = remote.key(what) if what.startswith("runs/") else remote.object_key(what)
        assert not os.path.lexists(key)
    failed_locks = {lk.name for lk in locks if lk.outputs[0].hash in res.failed}
    assert failed_locks and not failed_locks & set(res.complete_locks)
    assert _temps(small_fs) == []


def test_a_failed_sync_links_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(fs_sync._STATE["fn"] is not None, "syncfs", "Linux 5.8 or later")

    def eio(fd: int) -> bool:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(fs_sync, "syncfs", eio)
    root = tmp_path / "remote"
    puts = _puts(root, 20, b"x")
    outcomes = group_commit.publish(puts)
    assert all(isinstance(o, OSError) and o.errno == errno.EIO for o in outcomes), outcomes
    assert [k for k, _ in puts if os.path.lexists(k)] == []
    assert _temps(root) == []
    # Through the remote, each failed put is tried again on its own (fsync each), and lands.
    remote = LocalRemote("origin", f"file://{root}", None, str(root))
    assert remote.run(remote.aput_batch, puts) == [True] * 20
    assert all(Path(k).read_bytes() == d for k, d in puts)


def test_push_order_is_files_then_manifests_then_entries(tmp_path: Path, mode: str) -> None:
    objects = make_store(tmp_path / "a")
    locks = [file_lock(objects, "t/one", b"one" * 100), dir_lock(objects, tmp_path, "f/many")]
    remote = open_remote(remote=RemoteConfig(url=f"file://{tmp_path}/remote"), name="origin")
    synced: list[list[str]] = []
    with group_commit.observing(lambda stage, paths: stage == "names" and synced.append(paths)):
        res = transfer.push(objects, remote, locks)
    assert res.ok and len(res.entries) == 2
    kinds = []
    for batch in synced:
        names = {os.path.relpath(p, tmp_path / "remote").split("/")[0] for p in batch}
        is_dir = {oids.is_dir(p.split("/")[-2] + p.split("/")[-1]) for p in batch}
        kinds.append("entries" if names == {"runs"} else "dirs" if is_dir == {True} else "files")
    assert kinds == ["files", "dirs", "entries"], kinds
    assert len(synced[0]) == len(all_oids(objects, locks)) - 1


def test_the_default_batch_is_one_create_each(tmp_path: Path) -> None:
    """`Remote.aput_batch` without group commit (memory://): one create each, never replacing."""
    remote = open_remote(remote=RemoteConfig(url="memory://gc-default/store"), name="origin")
    assert remote.batches is False
    src = tmp_path / "f"
    src.write_bytes(b"file bytes")
    puts: list[tuple[str, bytes | Path]] = [(remote.key("a"), b"one"), (remote.key("b"), src)]
    seen: list[tuple[int, object]] = []
    assert remote.run(remote.aput_batch, puts, 4, lambda i, o: seen.append((i, o))) == [True, True]
    assert sorted(seen) == [(0, True), (1, True)]
    again = [(remote.key("a"), b"other"), (remote.key("b"), b"other")]
    assert remote.run(remote.aput_batch, again) == [False, False]
    assert remote.get_bytes(remote.key("a")) == b"one"
    assert remote.get_bytes(remote.key("b")) == b"file bytes"


def test_syncfs_only_where_it_is_sound(tmp_path: Path, small_fs: Path) -> None:
    """The filesystem type decides: a local one is synced whole, an unknown device never."""
    require(fs_sync._STATE["fn"] is not None, "syncfs", "Linux 5.8 or later")
    assert fs_sync.fs_type(os.stat(small_fs).st_dev) == "tmpfs"
    assert fs_sync.whole(os.stat(small_fs).st_dev)
    here = fs_sync.fs_type(os.stat(tmp_path).st_dev)
    assert fs_sync.whole(os.stat(tmp_path).st_dev) == (here in fs_sync.SYNCFS_TYPES)
    assert fs_sync.fs_type(os.makedev(4095, 4095)) is None  # not mounted: not trusted
    assert not fs_sync.whole(os.makedev(4095, 4095))
    for fake in ("fuse.sshfs", "nfs4", "cifs"):
        assert fake not in fs_sync.SYNCFS_TYPES


def test_a_batch_over_two_filesystems_syncs_each_its_own_way(
    tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmpfs trusted, the other not (as FUSE would be): its files are fsynced one by one."""
    require(fs_sync._STATE["fn"] is not None, "syncfs", "Linux 5.8 or later")
    require(os.stat(tmp_path).st_dev != os.stat(small_fs).st_dev, "two filesystems", "tmp")
    monkeypatch.setattr(fs_sync, "SYNCFS_TYPES", frozenset({"tmpfs"}))
    calls: list[str] = []
    real_syncfs, real_fsync = fs_sync.syncfs, fs_sync.fsync
    monkeypatch.setattr(fs_sync, "syncfs", lambda fd: calls.append("syncfs") or real_syncfs(fd))
    monkeypatch.setattr(fs_sync, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    puts = _puts(tmp_path / "r", 6, b"disk") + _puts(small_fs / "r", 6, b"tmpfs")
    with group_commit.observing(lambda stage, paths: calls.append(stage)):
        assert group_commit.publish(puts) == [True] * 12
    # 6 temps fsynced as written, one syncfs (tmpfs) before "data"; after the
    # links one syncfs and an fsync of each of the untrusted folders (6 shards).
    assert calls == ["fsync"] * 6 + ["syncfs", "data", "syncfs"] + ["fsync"] * 6 + ["names"]
