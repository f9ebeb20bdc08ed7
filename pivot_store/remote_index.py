"""`KnownIndex`: what this cache has confirmed on each remote.

A file inside the local cache (`.pivot/cache/remotes/<hash of url>.known`), so
it lives beside the cache rather than with the remote backends. Push and
fetch feed it; push reads it to skip work it has already seen done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from pivot_store import atomic
from pivot_store.hashing import hash_bytes


class KnownIndex:
    """Objects and run-cache entries this cache has seen on one remote.

    A plain text file per remote URL under `.pivot/cache/remotes/`, one key a
    line. It can only be wrong in one direction that matters: something
    deleted from the remote behind pivot's back (push never deletes). So it
    only ever lets a push skip work, `pivot push --verify-remote` ignores it
    and rewrites it from what the remote really holds, and it is written
    after the objects and entries it names are confirmed: by a push that
    found or wrote them, or by a fetch that downloaded them (or read the
    entry). Lost updates (two transfers at once) only cost a later check.
    """

    def __init__(self, cache_root: Path, url: str) -> None:
        self.path = Path(cache_root).parent / "remotes" / f"{hash_bytes(url.encode())}.known"

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
