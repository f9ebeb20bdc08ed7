"""Disk full while adding: one clear line, nothing half-written, the store still valid.

A real 8 MiB tmpfs when this machine lets us mount one (root); ENOSPC/EDQUOT
simulated at the file layer (in a real `pivot` process) always.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pivot_store.config import Config
from pivot_store.integrity import verify
from pivot_store.repo import Repo
from tests.fixtures.parts import missing, require
from tests.store.conftest import ROOT, assert_one_error_line, pivot_subprocess

FIX = "free space, or move the cache"


@pytest.fixture
def small_fs(tmp_path: Path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    can_mount = shutil.which("mount") is not None and os.geteuid() == 0
    require(can_mount, "root + tmpfs", "mounting a tmpfs needs root and mount(8)")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        missing("root + tmpfs", f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _no_temps(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob(".tmp-*")]


def _final_state_ok(repo: Repo, big_name: str) -> int:
    fresh = Repo(repo.root)
    res = verify(fresh.objects)
    assert res.corrupt == []
    assert fresh.read_lock(big_name) is None  # no lock for what was not stored
    for p in fresh.objects.root.rglob("*"):  # every object under a final name is whole
        if p.is_file():
            assert fresh.objects.verify(p.parent.name + p.name)
    return res.checked


def test_add_bigger_than_a_full_cache_disk(repo: Repo, small_fs: Path) -> None:
    """The cache on an 8 MiB tmpfs (`.pivot/cache` a symlink), a 12 MiB file added."""
    (small_fs / "cache").mkdir()
    (repo.pivot_dir / "cache").symlink_to(small_fs / "cache")
    big = repo.root / "big.bin"
    big.write_bytes(random.Random(1).randbytes(12 << 20))
    big.chmod(0o664)  # not the default umask's mode: restored, not reset to 0644
    before = big.stat()
    r = pivot_subprocess("add", "big.bin", cwd=repo.root)
    assert_one_error_line(r.returncode, r.stderr, "big.bin", "no space left", FIX)
    assert _no_temps(small_fs, repo.pivot_dir) == []
    free = shutil.disk_usage(small_fs).free
    assert free > 7 << 20, free  # the partial copy was removed
    checked = _final_state_ok(repo, "big.bin")
    # The failed add left the user's file as it was: same inode and mode (not the
    # cache's 0444), not linked into the cache. (os.access is always True for root.)
    after = big.stat()
    assert (after.st_ino, after.st_mode, after.st_nlink) == (
        before.st_ino,
        before.st_mode,
        1,
    ), (oct(before.st_mode), oct(after.st_mode), after.st_nlink)
    assert after.st_mode & 0o200
    (repo.root / "small.txt").write_bytes(b"fits\n" * 1000)
    r2 = pivot_subprocess("add", "small.txt", cwd=repo.root)
    assert r2.returncode == 0, r2.stderr
    assert Repo(repo.root).status(["small.txt"])[0].status == "ok"
    print(
        f"\n[disk full] tmpfs 8 MiB cache, 12 MiB add: {r.stderr.strip()!r};"
        f" {free >> 10} KiB free after, 0 temps, verify checked {checked} objects"
    )


def test_project_on_a_full_disk_in_copy_mode(tmp_path: Path, small_fs: Path) -> None:
    """The whole project on the tmpfs, copy mode: a 5 MiB file fits once, not twice."""
    root = small_fs / "proj"
    repo = Repo.init(root)
    repo.save_config(Config(checkout_mode="copy"))
    (root / "five.bin").write_bytes(random.Random(2).randbytes(5 << 20))
    r = pivot_subprocess("add", "five.bin", cwd=root)
    assert_one_error_line(r.returncode, r.stderr, "five.bin", "no space left", FIX)
    assert _no_temps(root) == []
    _final_state_ok(repo, "five.bin")
    (root / "five.bin").unlink()
    (root / "small.txt").write_bytes(b"fits\n")
    r2 = pivot_subprocess("add", "small.txt", cwd=root)
    assert r2.returncode == 0, r2.stderr
    assert Repo(root).status()[0].status == "ok"


_FULL_AFTER = """
import errno, sys
import pivot_store.atomic as atomic
from pivot_store.cli.app import main

LIMIT, CODE = int(sys.argv[1]), getattr(errno, sys.argv[2])
real_open = open

class Full:
    # Files that together take LIMIT bytes, then fail like a full disk.
    used = 0
    def __init__(self, f):
        self._f = f
    def write(self, data):
        if Full.used + len(data) > LIMIT:
            raise OSError(CODE, __import__("os").strerror(CODE))
        Full.used += len(data)
        return self._f.write(data)
    def __getattr__(self, name):
        return getattr(self._f, name)

def full_open(path, mode="r", *a, **k):
    f = real_open(path, mode, *a, **k)
    return Full(f) if "x" in mode or "w" in mode else f

atomic.open = full_open  # every store write goes through atomic.temp_file
sys.exit(main(sys.argv[3:]))
"""


def _pivot_full(root: Path, limit: int, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _FULL_AFTER, str(limit), code, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT"])
@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_simulated_full_disk_while_adding(repo: Repo, code: str, mode: str) -> None:
    repo.save_config(Config(checkout_mode=mode))
    big = repo.root / "data.bin"
    big.write_bytes(random.Random(3).randbytes(3 << 20))
    folder = repo.root / "folder"
    folder.mkdir()
    for i in range(40):  # 2 MB in all: more than the 1 MiB left
        (folder / f"{i}.txt").write_bytes(os.urandom(50_000))
    for target in ("data.bin", "folder"):
        r = _pivot_full(repo.root, 1 << 20, code, "add", target)
        if mode == "hardlink" and r.returncode == 0:
            continue  # linked in, nothing copied: a full disk does not matter
        assert_one_error_line(r.returncode, r.stderr, "no space left", FIX)
        assert target in r.stderr or ".pivot" in r.stderr
        assert os.strerror(getattr(errno, code)) in r.stderr
        assert _no_temps(repo.root) == []
        _final_state_ok(repo, target)
    # A lock write that hits a full disk: one line naming the lock, no temp, no lock.
    (repo.root / "tiny.txt").write_bytes(b"x")
    r = _pivot_full(repo.root, 0, code, "add", "tiny.txt")
    assert_one_error_line(r.returncode, r.stderr, "no space left", FIX)
    assert _no_temps(repo.root) == []
    assert Repo(repo.root).read_lock("tiny.txt") is None
    # Space again: everything adds and verifies.
    r = pivot_subprocess("add", "data.bin", "folder", "tiny.txt", cwd=repo.root)
    assert r.returncode == 0, r.stderr
    assert all(row.status == "ok" for row in Repo(repo.root).status())
    assert verify(Repo(repo.root).objects).corrupt == []
