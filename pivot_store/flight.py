"""One computation per fingerprint at a time on one machine (single flight).

Two runs (or two step processes) that reach the same fingerprint together
would both miss and both compute. The first takes an exclusive `flock` on
`.pivot/tmp/flight/<fingerprint>.lock` and holds it until its result's lock is
written; the others wait on it, then look again and hit.

The lock file is removed by its holder before the release, so finished
flights leave nothing behind. A waiter that then wins the `flock` on the
removed file sees that the path no longer names the file it holds and tries
again (the usual unlink-while-waiting race). The kernel drops a killed
holder's `flock`, so a crashed computation never blocks anyone.

On timeout the waiter computes anyway and says so: waiting longer could
stall a run for hours behind a stuck one, while computing twice is only
wasted work, never a wrong result.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pivot_store import oid as oids

POLL_S = (0.02, 0.5)  # first and longest sleep between tries


@dataclass
class Flight:
    """A held (or not held) claim on computing one fingerprint."""

    path: Path
    held: bool
    waited: bool = False  # another process held it: look for its result again
    waited_s: float = 0.0
    timed_out: bool = False
    _fd: int = field(default=-1, repr=False)

    def release(self) -> None:
        """Remove the lock file, then let the waiters in. Safe to call twice."""
        if self._fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)  # closing drops the flock
        self._fd = -1
        self.held = False


def claim(folder: Path, fingerprint: str, timeout_s: float) -> Flight:
    """Take the flight for `fingerprint`, waiting up to `timeout_s` for its holder.

    `waited` tells the caller another process held it: look for its result
    again before computing. `timed_out` means it is still held by
    someone else and this caller goes ahead without it.
    """
    oids.validate(fingerprint)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{fingerprint}.lock"
    start = time.monotonic()
    sleep = POLL_S[0]
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            waited = True
            so_far = time.monotonic() - start
            if so_far >= timeout_s:
                return Flight(path, held=False, waited=True, waited_s=so_far, timed_out=True)
            time.sleep(min(sleep, max(timeout_s - so_far, 0.0)))
            sleep = min(sleep * 2, POLL_S[1])
            continue
        if _names(path, fd):
            return Flight(path, True, waited, time.monotonic() - start, _fd=fd)
        os.close(fd)  # the holder removed this file while we waited: try the new one


def _names(path: Path, fd: int) -> bool:
    """True when `path` still is the file open as `fd`."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
