"""State db: an unchanged file is never hashed twice; any change is rehashed; safe
from several processes at once (contract line 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pivot_store.state as state_mod
from pivot_store.hashing import hash_file
from pivot_store.state import MIN_SIZE, RACY_NS, NullState, State
from tests.store.conftest import ROOT, pivot_subprocess


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def counting(path, size=None):
        calls.append(Path(path))
        return hash_file(path, size)

    monkeypatch.setattr(state_mod, "hash_file", counting)
    return calls


def _old_file(path: Path, data: bytes) -> Path:
    """A file whose mtime is safely past the racy window."""
    path.write_bytes(data)
    old = time.time() - 10
    os.utime(path, (old, old))
    return path


def test_unchanged_big_file_is_not_rehashed(tmp_path: Path, counted: list[Path]) -> None:
    s = State(tmp_path / "state.lmdb")
    f = _old_file(tmp_path / "big", os.urandom(MIN_SIZE * 4))
    h = s.hash(f)
    assert h == hash_file(f) and len(counted) == 1
    for _ in range(3):
        assert s.hash(f) == h
    assert len(counted) == 1
    s.close()
    assert State(tmp_path / "state.lmdb").hash(f) == h  # persisted across opens
    assert len(counted) == 1


def test_touched_or_modified_file_is_rehashed(tmp_path: Path, counted: list[Path]) -> None:
    s = State(tmp_path / "state.lmdb")
    f = _old_file(tmp_path / "big", b"a" * MIN_SIZE * 2)
    h1 = s.hash(f)
    os.utime(f, (time.time() - 5, time.time() - 5))  # touched: same bytes, new stamp
    assert s.hash(f) == h1 and len(counted) == 2
    # Same size, same mtime, different bytes (an in-place edit that restores mtime):
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.write(b"b")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    h2 = s.hash(f)  # ctime still differs, so the entry is ignored
    assert h2 != h1 and h2 == hash_file(f) and len(counted) == 3
    f.unlink()  # a new file (new inode) at the same path
    _old_file(f, b"c" * MIN_SIZE * 2)
    assert s.hash(f) == hash_file(f) and len(counted) == 4


def test_racy_and_small_files_are_not_recorded(tmp_path: Path, counted: list[Path]) -> None:
    s = State(tmp_path / "state.lmdb")
    fresh = tmp_path / "fresh"
    fresh.write_bytes(b"x" * MIN_SIZE)  # modified just now: within RACY_NS
    assert time.time_ns() - fresh.stat().st_mtime_ns < RACY_NS
    s.hash(fresh)
    assert s.get(fresh, fresh.stat()) is None
    small = _old_file(tmp_path / "small", b"tiny")
    s.hash(small)
    s.hash(small)
    assert len(counted) == 3  # small files always hash: cheaper than a lookup


def test_null_state_always_hashes(tmp_path: Path) -> None:
    f = _old_file(tmp_path / "f", b"x" * MIN_SIZE)
    n = NullState()
    assert n.hash(f) == hash_file(f) and n.get(f, f.stat()) is None


_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from pivot_store.state import State
    db, folder, go, me = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    s = State(db)
    files = sorted(folder.iterdir())
    for i, f in enumerate(files[me::2] + files):
        s.hash(f)
    s.close()
    """
)


def test_several_processes_share_one_db(tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(40):
        _old_file(folder / f"f{i}", (b"%d" % i) * MIN_SIZE)
    db, go = tmp_path / "state.lmdb", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db), str(folder), str(go), str(i)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    time.sleep(0.2)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    s = State(db)
    for f in folder.iterdir():
        assert s.get(f, f.stat()) == hash_file(f)


def test_small_files_get_no_entry_and_batches_commit_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hash` never looks a file below MIN_SIZE up, so `set` writes none; a batch
    writes all its entries in one transaction at its end."""
    s = State(tmp_path / "state.lmdb")
    small = _old_file(tmp_path / "small", b"s" * (MIN_SIZE - 1))
    s.set(small, small.stat(), hash_file(small))
    with s._db().begin() as txn:
        assert txn.stat()["entries"] == 0
    writes: list[int] = []
    real_write = State._write
    monkeypatch.setattr(
        State, "_write", lambda self, items: writes.append(len(items)) or real_write(self, items)
    )
    bigs = [_old_file(tmp_path / f"big{i}", (b"%d" % i) * MIN_SIZE) for i in range(5)]
    with s.batch():
        with s.batch():  # nested: the outer one writes
            for f in bigs:
                s.hash(f)
        assert writes == [] and all(s.get(f, f.stat()) is None for f in bigs)
    assert writes == [5]
    assert all(s.get(f, f.stat()) == hash_file(f) for f in bigs)
    s.set(bigs[0], bigs[0].stat(), hash_file(bigs[0]))  # outside a batch: at once
    assert writes == [5, 1]
    s.close()


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_a_damaged_state_db_is_set_aside_and_add_and_status_go_on(
    project: Path, cli, damage: str
) -> None:
    """Issue 15 item 3: random bytes in data.mdb (as a disk or a bad copy leaves them)
    cost one warning line and a rehash, never a failed command."""
    import random

    assert cli("init")[0] == 0
    big = project / "big.bin"
    big.write_bytes(b"x" * (MIN_SIZE + 10))
    assert cli("add", "big.bin")[0] == 0
    data = project / ".pivot" / "state.lmdb" / "data.mdb"
    assert data.exists()
    rng = random.Random(7)
    if damage == "random":
        data.write_bytes(rng.randbytes(data.stat().st_size or 8192))
    else:
        data.write_bytes(data.read_bytes()[:100])
    (project / "other.bin").write_bytes(b"y" * (MIN_SIZE + 10))
    # Real processes: the warning line is what a user's terminal shows.
    done = pivot_subprocess("add", "other.bin", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "state db" in lines[0] and "damaged" in lines[0], lines
    done = pivot_subprocess("status", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "damaged" not in done.stderr  # healed once, then quiet
    aside = list((project / ".pivot" / "tmp").glob("state.lmdb.damaged-*"))
    assert len(aside) == 1 and (project / ".pivot" / "state.lmdb" / "data.mdb").exists()
