"""ObjectStore: read-only objects, never replaced, atomic under many processes and SIGKILL.

Contract line 1 (an object appears under its final name only when complete;
cache files are read-only) and line 5 (many processes at once).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pivot_store import atomic
from pivot_store.errors import CorruptObject, ObjectMissing
from pivot_store.hashing import hash_bytes, hash_file
from pivot_store.integrity import verify
from pivot_store.objects import ObjectStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / ".pivot" / "cache" / "files")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _leftovers(store: ObjectStore) -> list[str]:
    """Names in the shard folders that are not valid object ids (temps, partials)."""
    bad = []
    for shard in store.root.iterdir():
        for f in shard.iterdir():
            if len(f.name) != 14 and not f.name.endswith(".dir"):
                bad.append(f"{shard.name}/{f.name}")
    return bad


def test_objects_are_read_only_and_named_by_their_hash(store: ObjectStore, tmp_path: Path) -> None:
    # Contract line 1: cache files are read-only (0444; 0555 when executable).
    a = store.add_bytes(b"hello")
    assert a.oid == hash_bytes(b"hello") and a.size == 5 and a.new
    assert store.path(a.oid) == store.root / a.oid[:2] / a.oid[2:]
    assert _mode(store.path(a.oid)) == 0o444
    src = tmp_path / "tool.sh"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    src.chmod(0o755)
    b = store.add_file(src)
    assert _mode(store.path(b.oid)) == 0o555
    assert src.read_bytes() == store.read_bytes(b.oid)
    assert _mode(src) == 0o755  # a copying add leaves the workspace file alone


def test_an_existing_object_is_never_replaced(store: ObjectStore, tmp_path: Path) -> None:
    first = store.add_bytes(b"same bytes")
    p = store.path(first.oid)
    ino = p.stat().st_ino
    old = time.time() - 3600
    os.utime(p, (old, old))
    again = store.add_bytes(b"same bytes")
    assert again.oid == first.oid and not again.new
    assert p.stat().st_ino == ino  # not replaced
    assert p.stat().st_mtime > old + 1800  # freshened for gc's grace period
    f = tmp_path / "f"
    f.write_bytes(b"same bytes")
    for move in (False, True):
        assert store.add_file(f, move=move).oid == first.oid
        assert p.stat().st_ino == ino
    assert list(store.tmp_dir.iterdir()) == []


def test_publish_new_never_replaces(tmp_path: Path) -> None:
    final = tmp_path / "final"
    final.write_bytes(b"first")
    tmp = tmp_path / ".tmp-x"
    tmp.write_bytes(b"second")
    assert atomic.publish_new(tmp, final) is False
    assert final.read_bytes() == b"first" and not tmp.exists()


def test_add_file_move_links_instead_of_copying(store: ObjectStore, tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(100_000))
    added = store.add_file(f, move=True)
    assert added.new
    assert store.path(added.oid).stat().st_ino == f.stat().st_ino
    assert _mode(f) == 0o444  # protected like DVC's hardlinked outputs


def test_empty_file_is_an_object(store: ObjectStore, tmp_path: Path) -> None:
    f = tmp_path / "empty"
    f.write_bytes(b"")
    for move in (False, True):
        a = store.add_file(f, move=move)
        assert a.oid == hash_bytes(b"") and a.size == 0
    assert store.read_bytes(a.oid) == b""


def test_a_failed_writer_publishes_nothing(store: ObjectStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"partial")
        raise RuntimeError("serializer failed")
    assert not store.exists(hash_bytes(b"partial"))
    assert list(store.tmp_dir.iterdir()) == []


def test_insert_verified_refuses_a_mismatch(store: ObjectStore) -> None:
    # Contract line 3: a mismatch is an error naming the object, and nothing is kept.
    store.tmp_dir.mkdir(parents=True)
    tmp = atomic.temp_name(store.tmp_dir)
    tmp.write_bytes(b"tampered")
    expected = hash_bytes(b"original")
    with pytest.raises(CorruptObject, match=expected):
        store.insert_verified(tmp, expected, source="s3://b/x")
    assert not tmp.exists() and not store.exists(expected)
    tmp.write_bytes(b"original")
    assert store.insert_verified(tmp, expected)
    assert store.read_bytes(expected) == b"original"


def test_insert_bytes_checks_before_writing(store: ObjectStore) -> None:
    """Contract line 3, hashing once: a mismatch never touches the disk."""
    expected = hash_bytes(b"original")
    with pytest.raises(CorruptObject, match=f"{expected} from s3://b/x hashes to"):
        store.insert_bytes(b"tampered", expected, source="s3://b/x")
    assert not store.exists(expected)
    assert not store.tmp_dir.exists() or list(store.tmp_dir.iterdir()) == []
    assert store.insert_bytes(b"original", expected) is True
    assert store.read_bytes(expected) == b"original"
    assert stat.S_IMODE(os.stat(store.path(expected)).st_mode) == 0o444
    assert store.insert_bytes(b"original", expected) is False  # there already: freshened
    manifest = hash_bytes(b"{}") + ".dir"
    assert store.insert_bytes(b"{}", manifest) and store.exists(manifest)


def test_open_missing_object_is_a_clear_error(store: ObjectStore) -> None:
    with pytest.raises(ObjectMissing, match="0123456789abcdef"):
        store.open("0123456789abcdef")


# --- many processes ----------------------------------------------------------------------

_ADD_MANY = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pivot_store.objects import ObjectStore
    root, go = Path(sys.argv[1]), Path(sys.argv[2])
    store = ObjectStore(root)
    while not go.exists():
        time.sleep(0.005)
    for i in range(1000):
        store.add_bytes(b"object %d " % i * (1 + i % 50))
    """
)


def test_eight_processes_add_the_same_objects(store: ObjectStore, tmp_path: Path) -> None:
    # Contract line 5: no lost writes, no torn objects, no errors.
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ADD_MANY, str(store.root), str(go)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    time.sleep(0.3)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    expected = {hash_bytes(b"object %d " % i * (1 + i % 50)) for i in range(1000)}
    assert set(store.iter_oids()) == expected
    assert _leftovers(store) == []
    assert list(store.tmp_dir.iterdir()) == []
    result = verify(store)
    assert result.checked == 1000 and result.corrupt == []
    assert all(_mode(store.path(o)) == 0o444 for o in expected)


# --- SIGKILL in the middle of adding a large file ------------------------------------------

BIG = 300 << 20

_KILLED_ADD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import pivot_store.objects as objects
    from pivot_store.objects import ObjectStore
    root, src, marker, how = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

    class Slow:
        # The real file, read normally until 100 MiB, then the process stalls there.
        def __init__(self, f):
            self.f, self.n = f, 0
        def readinto(self, buf):
            n = self.f.readinto(buf)
            self.n += n
            if self.n >= 100 << 20:
                marker.touch()
                time.sleep(600)
            return n

    store = ObjectStore(root)
    if how == "stream":
        with open(src, "rb", buffering=0) as f:
            store.add_stream(Slow(f))
    else:
        real = objects.hash_file
        def slow_hash(path):
            from pivot_store.hashing import hash_stream
            with open(path, "rb", buffering=0) as f:
                return hash_stream(Slow(f))
        objects.hash_file = slow_hash
        store.add_file(src, move=True)
    """
)


def _big_file(path: Path) -> Path:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(BIG >> 20):
            f.write(i.to_bytes(8, "little") + block[8:])
    return path


@pytest.mark.slow
@pytest.mark.parametrize("how", ["stream", "move"])
def test_sigkill_mid_add_leaves_no_partial_object(
    store: ObjectStore, tmp_path: Path, how: str
) -> None:
    # Contract line 1: an object appears under its final name only when complete.
    src = _big_file(tmp_path / "big.bin")
    expected = hash_file(src)
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_ADD, str(store.root), str(src), str(marker), how],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the adding process died on its own"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not store.exists(expected)
    assert list(store.iter_oids()) == []
    if how == "stream":  # the killed writer's temp is outside the shard folders
        assert all(atomic.is_temp(p.name) for p in store.tmp_dir.iterdir())
    # The next add succeeds and stores the right bytes; verify passes.
    again = store.add_file(src, move=(how == "move"))
    assert again.oid == expected and again.new
    assert hash_file(store.path(expected)) == expected
    assert verify(store).corrupt == []


@pytest.mark.parametrize("move", [False, True])
def test_shard_and_tmp_folders_removed_behind_the_store_are_made_again(
    store: ObjectStore, tmp_path: Path, move: bool
) -> None:
    """The store makes each shard folder once and remembers it; a folder removed since
    (a hand-cleaned cache) is made again, and the object still appears whole."""
    first = tmp_path / "a"
    first.write_bytes(b"first")
    oid = store.add_file(first, move=move).oid
    assert store.path(oid).parent.as_posix() in store._dirs
    store.remove(oid)
    store.path(oid).parent.rmdir()
    if store.tmp_dir.exists():
        store.tmp_dir.rmdir()
    again = tmp_path / "b"
    again.write_bytes(b"first")
    added = store.add_file(again, move=move)
    assert added.oid == oid and added.new and store.read_bytes(oid) == b"first"
    assert _mode(store.path(oid)) == 0o444 and _leftovers(store) == []


def test_temp_names_are_unique_and_carry_the_pid(tmp_path: Path) -> None:
    from pivot_store.objects import _temp_name

    names = {_temp_name(str(tmp_path), ".link") for _ in range(1000)}
    assert len(names) == 1000
    for n in names:
        base = os.path.basename(n)
        assert atomic.is_temp(base) and atomic.temp_in_use(base)
