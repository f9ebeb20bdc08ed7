"""The one writer: every store file goes through here.

A file is written under a temp name in its final folder, then published:
objects by `os.link` (an existing object is never replaced; the temp is then
removed), locks and config by `os.replace`. A crash leaves at most a temp file,
never a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pivot_store.errors import FULL_FIX, DiskFull

TMP_PREFIX = ".tmp-"


def temp_name(folder: Path, hint: str = "") -> Path:
    return folder / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{hint}"


_TEMP = {"pid": -1, "token": ""}
_COUNTER = itertools.count()


def fast_temp_name(folder: str) -> str:
    """`temp_name` (the writer's pid after the prefix, for gc) without a Path or a
    fresh random token per call: one token per process (renewed in a forked
    child) and a counter. For the hot paths that publish thousands of files."""
    pid = os.getpid()
    if _TEMP["pid"] != pid:
        _TEMP.update(pid=pid, token=secrets.token_hex(4))
    return f"{folder}/{TMP_PREFIX}{pid}-{_TEMP['token']}{next(_COUNTER):x}"


def is_temp(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


#: Every temp name a pivot writer makes: prefix, pid, hex token (+ counter), hint.
_OWN_TEMP = re.compile(r"\.tmp-[0-9]+-[0-9a-f]+(?:\.part|\.pull)?")


def is_own_temp(name: str) -> bool:
    """True for a name only a pivot writer makes (`temp_name`, `fast_temp_name`).

    A checkout builds each file under such a name beside its destination, so a
    folder being added while another process checks it out can hold one for a
    moment: hashing it would record a file that was never the user's.
    """
    return _OWN_TEMP.fullmatch(name) is not None


def temp_in_use(name: str) -> bool:
    """True when a temp file's writer (the pid in its name) is still running.

    gc and tree checkouts clean up temp files left by killed writers; a live
    writer's temp is about to be published, and removing it would fail that
    writer (`pivot gc --grace 0` beside a running `pivot add`).
    """
    pid_text = name[len(TMP_PREFIX) :].partition("-")[0]
    if not is_temp(name) or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def publish_new(tmp: str | Path, final: str | Path) -> bool:
    """Link `tmp` to `final` unless `final` exists; remove `tmp`. True if published.

    `os.link` fails with EEXIST instead of replacing, which is what makes
    concurrent writers of one object safe: the first wins, the rest discard.
    """
    try:
        os.link(tmp, final)
        published = True
    except FileExistsError:
        published = False
    except OSError:
        # Filesystems without hard links: rename is atomic too but replaces, so
        # check first; two racers then write identical bytes under one name.
        if os.path.exists(final):
            published = False
        else:
            os.replace(tmp, final)
            return True
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    return published


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(e: BaseException, what: str) -> DiskFull | None:
    """ENOSPC/EDQUOT as the one-line DiskFull naming `what`; None for other errors."""
    if isinstance(e, DiskFull):
        return DiskFull(f"no space left on device writing {what} ({e.reason})", FULL_FIX, e.reason)
    if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
        reason = e.strerror or os.strerror(e.errno)
        return DiskFull(f"no space left on device writing {what} ({reason})", FULL_FIX, reason)
    return None


@contextlib.contextmanager
def temp_file(folder: Path, hint: str = "") -> Iterator[tuple[Path, BinaryIO]]:
    """Open a fresh temp file in `folder`; it is removed if the block fails.

    Every failure path removes the temp (closing may fail too when the disk is
    full: the buffered tail cannot be flushed), and a full disk comes out as
    DiskFull, not a bare OSError.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = temp_name(folder, hint)
        f = open(path, "xb")  # noqa: SIM115 - closed below, removed on error
    except OSError as e:
        full = disk_full(e, str(folder))
        if full is None:
            raise
        raise full from None
    try:
        yield path, f
        f.close()
    except BaseException as e:
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        full = disk_full(e, str(folder)) if not isinstance(e, DiskFull) else None
        if full is None:
            raise
        raise full from None


def write_replace(path: Path, data: bytes, *, fsync: bool = True, mode: int = 0o644) -> None:
    """Atomically replace `path` with `data` (locks, config, run-cache copies)."""
    try:
        with temp_file(path.parent, ".part") as (tmp, f):
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
    except OSError as e:
        full = disk_full(e, str(path))
        if full is None:
            raise
        raise full from None
