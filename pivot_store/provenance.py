"""Which objects entered the cache from a remote (issue 12 item 3).

An object's bytes are checked against its name when it is downloaded, but a
name says nothing about who made the bytes: a pickle planted on a shared
remote hashes as well as one this machine wrote. The store therefore keeps one
empty marker file per object that arrived from a remote,
`.pivot/cache/from-remote/<oid[:2]>/<oid[2:]>`, written by the download path
(`ObjectStore.insert_bytes` / `insert_verified`, which `transfer.fetch` uses)
and removed when this machine produces the same bytes itself (a local
serialization or add) or the object is removed. Loaders ask `is_remote` on
every load, so a refusal holds on the second load as on the first.

A marker is only ever a reason to distrust: a lost marker (a hand-cleaned
cache) makes a remote object look local, so the markers live beside the
objects and go only with them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pivot_store import oid as oids

DIR_NAME = "from-remote"


class Provenance:
    """The from-remote markers of one object store (`cache_dir` is `.pivot/cache`)."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / DIR_NAME
        self._root_s = os.fspath(self.root)
        # Shard folders made or seen: made once, not once per marker (a folder
        # removed since is made again when creating a marker in it fails).
        self._dirs: set[str] = set()

    def _marker(self, oid: str) -> str:
        oids.validate(oid)
        return f"{self._root_s}/{oid[:2]}/{oid[2:]}"

    def mark(self, oid: str) -> None:
        """Remember that `oid` came from a remote."""
        path = self._marker(oid)
        folder = path.rpartition("/")[0]
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)

    def clear(self, oid: str) -> None:
        """`oid` was produced here (or removed): it no longer counts as remote."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self._marker(oid))

    def is_remote(self, oid: str) -> bool:
        return os.path.exists(self._marker(oid))
