"""`KnownIndex`: what this cache has confirmed on each remote.

A file inside the local cache (`.pivot/cache/remotes/<hash>.known`, the hash
of "v2" and the remote's identity), so it lives beside the cache rather than
with the remote backends. Push and fetch feed it; push reads it to skip work
it has already seen done. Files of the first version (named by a hash of the
URL alone) are never read again: they only ever let a push skip work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path

from pivot_store import atomic
from pivot_store.hashing import hash_bytes


class KnownIndex:
    """Objects and run-cache entries this cache has seen on one remote.

    A plain text file per remote under `.pivot/cache/remotes/`, one key a
    line, named by the remote's identity (`Remote.identity`: the URL plus its
    endpoint, region and profile), so one `s3://bucket/prefix` on two
    endpoints keeps two indexes. It can only be wrong in one direction that
    matters: something deleted from the remote behind pivot's back (push never
    deletes). So it only ever lets a push skip work; a fetch that meets a
    missing object the index claims drops it (`drop`); `pivot push
    --verify-remote` (and the push sensor, every `verify_remote_every`) ignores
    it and rewrites it from what the remote really holds, stamping the time in
    `<hash>.verified` beside it. It is written after the objects and entries
    it names are confirmed: by a push that found or wrote them, or by a fetch
    that downloaded them (or read the entry). Lost updates (two transfers at
    once) only cost a later check.
    """

    def __init__(self, cache_root: Path, identity: str) -> None:
        name = hash_bytes(f"known-index v2\n{identity}".encode())
        self.path = Path(cache_root).parent / "remotes" / f"{name}.known"
        self.stamp = self.path.with_suffix(".verified")

    def load(self) -> set[str]:
        try:
            return set(self.path.read_text().split())
        except (OSError, UnicodeDecodeError):
            return set()

    def add(self, keys: Iterable[str], *, replace: bool = False) -> None:
        new = set(keys)
        known = set() if replace else self.load()
        if not replace and new <= known:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = "".join(f"{k}\n" for k in sorted(known | new)).encode()
            atomic.write_replace(self.path, data, fsync=False)

    def discard(self, keys: Iterable[str]) -> None:
        """Forget `keys` (remote gc deleted them), so a later push checks and re-uploads them."""
        gone = set(keys)
        known = self.load()
        if not gone & known:
            return
        with contextlib.suppress(OSError):
            data = "".join(f"{k}\n" for k in sorted(known - gone)).encode()
            atomic.write_replace(self.path, data, fsync=False)

    def drop(self) -> None:
        """Forget everything: the remote lost something this index claimed.

        The verification stamp goes too, so the push sensor's next push checks
        every object (`verify_remote`), not only what no manifest vouches for.
        """
        for path in (self.path, self.stamp):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def verified_at(self) -> float | None:
        """When a push last checked the remote itself (`mark_verified`), if ever."""
        try:
            return float(self.stamp.read_text().strip())
        except (OSError, ValueError):
            return None

    def mark_verified(self, when: float | None = None) -> None:
        with contextlib.suppress(OSError):
            self.stamp.parent.mkdir(parents=True, exist_ok=True)
            data = f"{time.time() if when is None else when}\n".encode()
            atomic.write_replace(self.stamp, data, fsync=False)

    def verify_due(self, every: float | None) -> bool:
        """True when `every` seconds have passed since the last verification.

        Also when there was none, or its stamp lies in the future (a clock set back).
        """
        if every is None:
            return False
        last = self.verified_at()
        return last is None or not 0 <= time.time() - last < every
