"""The state db: (inode, mtime_ns, size, ctime_ns) -> hash, so an unchanged file
is never hashed twice.

LMDB gives many readers and one writer across processes with no server; a
stale or mismatched entry is simply ignored, so the db can only save work,
never change an answer. `NullState` is the same interface doing nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pivot_store.hashing import hash_file

# Below this size reading and hashing the file costs about what a lookup does
# (Pivot measured 4 KiB files no faster with a state db); see bench/store.py.
MIN_SIZE = 64 * 1024
# A file modified within this window of being hashed could change again in
# the same timestamp tick ("racy git"); such entries are not recorded.
RACY_NS = 50_000_000
_VALUE = struct.Struct("<QqqQ8s")
log = logging.getLogger("pivot")


def _key(path: Path) -> bytes:
    return os.fsencode(os.path.abspath(path))


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


class NullState:
    """A state that knows nothing: every file is hashed."""

    def get(self, path: Path, st: os.stat_result) -> str | None:
        return None

    def set(self, path: Path, st: os.stat_result, oid: str) -> None:
        return None

    def hash(self, path: Path, st: os.stat_result | None = None) -> str:
        return hash_file(path, st.st_size if st is not None else None)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        yield

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """Raw values of the indexes beside the hashes (`lock_index`, `tree_index`)."""
        return [None] * len(keys)

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        return None

    def keys_under(self, prefix: bytes) -> list[bytes]:
        """The keys of one index (those starting with `prefix`), for pruning."""
        return []

    def delete_many(self, keys: list[bytes]) -> None:
        return None

    def close(self) -> None:
        return None


class State(NullState):
    """LMDB-backed state at `.pivot/state.lmdb`, opened on first use."""

    def __init__(self, path: Path, *, map_size: int = 1 << 30) -> None:
        self.path = Path(path)
        self.map_size = map_size
        self._env = None
        self._local = threading.local()  # .pending: the open batch of this thread

    def _db(self):
        if self._env is None:
            import lmdb

            try:
                self._env = self._open()
            except lmdb.Error as e:
                self._set_aside(e)
                self._env = self._open()
        return self._env

    def _open(self):
        import lmdb

        self.path.mkdir(parents=True, exist_ok=True)
        # sync=False: a crash may lose the last entries, which only costs a rehash.
        return lmdb.open(
            str(self.path),
            map_size=self.map_size,
            sync=False,
            metasync=False,
            max_readers=512,
            readahead=False,
        )

    def _set_aside(self, error: Exception) -> None:
        """A damaged db is only a lost cache of hashes: say so once, move it aside
        (kept for a post-mortem, not deleted), and start an empty one."""
        if self._env is not None:
            with contextlib.suppress(Exception):
                self._env.close()
            self._env = None
        # Under tmp/ (git-ignored beside the cache), never deleted by pivot.
        aside = (
            self.path.parent / "tmp" / f"{self.path.name}.damaged-{time.time_ns()}-{os.getpid()}"
        )
        aside.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(self.path, aside)
        log.warning(
            "pivot: the state db %s is damaged (%s); moved it to %s and started a new one"
            " (it only caches hashes: files are hashed again)",
            self.path,
            str(error).strip() or type(error).__name__,
            aside,
        )

    def get(self, path: Path, st: os.stat_result) -> str | None:
        import lmdb

        try:
            with self._db().begin() as txn:
                raw = txn.get(_key(path))
        except lmdb.Error as e:  # damaged after it opened: heal, and know nothing
            self._set_aside(e)
            return None
        if raw is None or len(raw) != _VALUE.size:
            return None
        *stamp, digest = _VALUE.unpack(raw)
        return digest.hex() if tuple(stamp) == _stamp(st) else None

    def set(self, path: Path, st: os.stat_result, oid: str) -> None:
        # `hash` never looks up a file below MIN_SIZE, so its entry would only
        # cost a write transaction.
        if st.st_size < MIN_SIZE or time.time_ns() - st.st_mtime_ns < RACY_NS:
            return
        item = (_key(path), _VALUE.pack(*_stamp(st), bytes.fromhex(oid[:16])))
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(item)
        else:
            self._write([item])

    def _write(self, items: list[tuple[bytes, bytes]]) -> None:
        try:
            with self._db().begin(write=True) as txn:
                for key, value in items:
                    txn.put(key, value)
        except Exception as e:  # a full, read-only or damaged db must not fail an add
            import lmdb

            if isinstance(e, lmdb.CorruptedError | lmdb.InvalidError | lmdb.PageNotFoundError):
                self._set_aside(e)
            return

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect this thread's `set`s inside the block into one write transaction at
        its end (a folder of many big files: one commit, not one per file). Entries
        are only a cache, so a block that fails still writes what it collected."""
        if getattr(self._local, "pending", None) is not None:  # nested: the outer one writes
            yield
            return
        items: list[tuple[bytes, bytes]] = []
        self._local.pending = items
        try:
            yield
        finally:
            self._local.pending = None
            if items:
                self._write(items)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """Raw values of `keys` in one read transaction; None for each when the db
        cannot be read (damaged: set aside; unreadable: only a cache, so a miss).

        Keys of the other indexes never start with `/`, so they never meet a
        file's entry (an absolute path)."""
        import lmdb

        try:
            with self._db().begin() as txn:
                return [txn.get(k) for k in keys]
        except lmdb.Error as e:
            with contextlib.suppress(OSError):
                self._set_aside(e)
        except OSError:
            pass
        return [None] * len(keys)

    def put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Write `items` in one transaction; never fails the caller (only a cache)."""
        if items:
            self._write(items)

    def keys_under(self, prefix: bytes) -> list[bytes]:
        """The keys starting with `prefix`, in one read transaction (keys only: no
        value is read); none when the db cannot be read."""
        import lmdb

        found: list[bytes] = []
        try:
            with self._db().begin() as txn, txn.cursor() as cur:
                if not cur.set_range(prefix):
                    return found
                for key in cur.iternext(values=False):
                    if not key.startswith(prefix):
                        break
                    found.append(key)
        except lmdb.Error as e:
            with contextlib.suppress(OSError):
                self._set_aside(e)
            return []
        except OSError:
            return []
        return found

    def delete_many(self, keys: list[bytes]) -> None:
        """Remove `keys` in one transaction; never fails the caller (only a cache)."""
        if not keys:
            return
        try:
            with self._db().begin(write=True) as txn:
                for key in keys:
                    txn.delete(key)
        except Exception as e:  # as `_write`: a full, read-only or damaged db
            import lmdb

            if isinstance(e, lmdb.CorruptedError | lmdb.InvalidError | lmdb.PageNotFoundError):
                self._set_aside(e)

    def hash(self, path: Path, st: os.stat_result | None = None) -> str:
        """Hash `path`, through the db when the file is big enough to be worth it."""
        st = st or os.stat(path)
        if st.st_size < MIN_SIZE:
            return hash_file(path, st.st_size)
        cached = self.get(path, st)
        if cached is not None:
            return cached
        oid = hash_file(path, st.st_size)
        self.set(path, st, oid)
        return oid

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
