"""The one writer: every store file goes through here.

A file is written under a temp name in its final folder, then published:
objects by `os.link` (an existing object is never replaced; the temp is then
removed), locks and config by `os.replace`. A crash leaves at most a temp file,
never a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"


def temp_name(folder: Path, hint: str = "") -> Path:
    return folder / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{hint}"


def is_temp(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


def publish_new(tmp: Path, final: Path) -> bool:
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
        if final.exists():
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


@contextlib.contextmanager
def temp_file(folder: Path, hint: str = "") -> Iterator[tuple[Path, BinaryIO]]:
    """Open a fresh temp file in `folder`; it is removed if the block fails."""
    folder.mkdir(parents=True, exist_ok=True)
    path = temp_name(folder, hint)
    f = open(path, "xb")  # noqa: SIM115 - closed below, removed on error
    try:
        yield path, f
    except BaseException:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    finally:
        f.close()


def write_replace(path: Path, data: bytes, *, fsync: bool = True, mode: int = 0o644) -> None:
    """Atomically replace `path` with `data` (locks, config, run-cache copies)."""
    with temp_file(path.parent, ".part") as (tmp, f):
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
