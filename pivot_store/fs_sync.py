"""Making written files durable: one `syncfs(2)` for a whole filesystem where that is
sound, else an fsync per file (the tool `group_commit` chooses with).

`os` has no syncfs; libc's is called through ctypes. It is used only where it
is known to make everything written before it durable and to report failure:

- Linux 5.8 or later: older kernels return 0 even when writeback failed;
- a local filesystem whose syncfs reaches stable storage (`SYNCFS_TYPES`):
  not FUSE, whose syncfs does nothing unless its server implements it, and not
  a network filesystem. The type comes from /proc/self/mountinfo, once per
  device; a device not found there is not trusted.

Anything else is synced file by file, as a single write always is.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

#: Filesystems whose syncfs writes every dirty file and its metadata durably.
SYNCFS_TYPES = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "tmpfs", "overlay"}
)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _load() -> Callable[[int], int] | None:
    """libc's `syncfs` on Linux >= 5.8, else None."""
    try:
        uname = os.uname()
        major, minor = (int(x) for x in uname.release.split(".")[:2])
    except (AttributeError, ValueError):
        return None
    if uname.sysname != "Linux" or (major, minor) < (5, 8):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_STATE: dict[str, Callable[[int], int] | None] = {"fn": _load()}
_TYPES: dict[int, str | None] = {}


def fs_type(dev: int) -> str | None:
    """The type of the filesystem mounted from device `dev` (mountinfo), or None."""
    if dev not in _TYPES:
        _TYPES[dev] = _mount_type(f"{os.major(dev)}:{os.minor(dev)}")
    return _TYPES[dev]


def _mount_type(devno: str) -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        if sep and len(fields) > 2 and fields[2] == devno and tail.split():
            return tail.split()[0]
    return None


def whole(dev: int) -> bool:
    """True when one syncfs makes the files of device `dev` durable (module doc)."""
    return _STATE["fn"] is not None and fs_type(dev) in SYNCFS_TYPES


def syncfs(fd: int) -> bool:
    """syncfs(fd): True once done; False when the kernel refuses the call itself
    (ENOSYS, or EPERM from a seccomp filter: syncfs is then off for the process,
    fsync each instead); an I/O error raises OSError."""
    fn = _STATE["fn"]
    if fn is None:
        return False
    if fn(fd) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):
        _STATE["fn"] = None
        return False
    raise OSError(err, os.strerror(err))


def fsync(fd: int) -> None:
    os.fsync(fd)


def fsync_path(path: str) -> None:
    """fsync a file or folder by path (a folder: the names in it)."""
    fd = os.open(path, _READ)
    try:
        fsync(fd)
    finally:
        os.close(fd)
