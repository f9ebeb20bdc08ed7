"""ObjectStore: the sharded, read-only object cache under `.pivot/cache/files`.

An object's name is the xxh64 of its bytes (`ab/cdef...`). Objects appear only
by `atomic.publish_new`, so a reader never sees a partial one and a concurrent
writer of the same object never replaces it; adding what exists just freshens
its mtime (which gc's grace period reads).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pivot_store import atomic
from pivot_store import oid as oids
from pivot_store.errors import FULL_FIX, CorruptObject, DiskFull, ObjectMissing
from pivot_store.hashing import CHUNK, HashingWriter, hash_bytes, hash_file
from pivot_store.provenance import Provenance
from pivot_store.state import MIN_SIZE

READ_ONLY = 0o444
# `missing` lists a shard instead of stat-ing each object from this many on.
_LIST_AT = 16
EXECUTABLE = 0o555


@dataclass(frozen=True)
class Added:
    oid: str
    size: int
    new: bool
    # The added file itself is now the object (a move-add hard-linked it in):
    # a hardlink checkout of it would change nothing.
    linked: bool = False


class ObjectStore:
    """Objects under `root` (`.pivot/cache/files`); temp files under `tmp_dir`."""

    def __init__(self, root: Path, *, fsync: bool | Callable[[], bool] = False) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root.parent / "tmp"
        # A callable is asked on first write (Repo passes its config lazily, so
        # reading objects never loads the config).
        self._fsync = fsync
        self._root_s = os.fspath(self.root)
        self._tmp_s = os.fspath(self.tmp_dir)
        # Folders this store has made or seen (shards, tmp/): made once, not once
        # per object. Only a cache: a folder removed since (a hand-cleaned cache)
        # is made again when a link into it fails.
        self._dirs: set[str] = set()
        # Which objects came from a remote (issue 12 item 3): marked by the
        # download path, cleared when this machine writes the same bytes.
        self.provenance = Provenance(self.root.parent)

    @property
    def fsync(self) -> bool:
        if callable(self._fsync):
            self._fsync = bool(self._fsync())
        return self._fsync

    @fsync.setter
    def fsync(self, value: bool) -> None:
        self._fsync = value

    # --- naming -------------------------------------------------------------
    def path(self, oid: str) -> Path:
        return self.root / oids.relpath(oid)

    def exists(self, oid: str) -> bool:
        return os.path.exists(self._final(oid))

    def missing(self, wanted: Iterable[str], *, valid: bool = False) -> set[str]:
        """Those of `wanted` not in the cache: one listing per shard that many of them
        share (a no-op push of 100,000 objects), else one `stat` each. `valid`: the
        caller read every id from a validated record (else each is validated here)."""
        by_shard: dict[str, list[str]] = {}
        for oid in wanted:
            if not valid:
                oids.validate(oid)
            by_shard.setdefault(oid[:2], []).append(oid)
        gone: set[str] = set()
        for shard, group in by_shard.items():
            folder = f"{self._root_s}/{shard}/"
            if len(group) < _LIST_AT:
                gone.update(o for o in group if not os.path.exists(folder + o[2:]))
                continue
            try:
                names = set(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                names = set()
            gone.update(o for o in group if o[2:] not in names)
        return gone

    def iter_oids(self) -> Iterator[str]:
        """Every object id in the cache (temp files and stray names skipped)."""
        if not self.root.is_dir():
            return
        for shard in sorted(os.scandir(self.root), key=lambda e: e.name):
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                name = shard.name + entry.name
                with contextlib.suppress(oids.InvalidOid):
                    yield oids.validate(name)

    # --- writing ------------------------------------------------------------
    def _ensure_dir(self, folder: str) -> None:
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)

    def _final(self, oid: str) -> str:
        """`path(oid)` as a string (the hot loops make no Path objects)."""
        oids.validate(oid)
        return f"{self._root_s}/{oid[:2]}/{oid[2:]}"

    def _publish(self, tmp: Path | str, oid: str, executable: bool) -> bool:
        os.chmod(tmp, EXECUTABLE if executable else READ_ONLY)
        final = self._final(oid)
        shard = final.rpartition("/")[0]
        self._ensure_dir(shard)
        try:
            published = atomic.publish_new(Path(tmp), Path(final))
        except FileNotFoundError:
            if not os.path.exists(tmp):
                raise
            self._dirs.discard(shard)  # the shard was removed since: make it again
            self._ensure_dir(shard)
            published = atomic.publish_new(Path(tmp), Path(final))
        if published:
            if self.fsync:
                atomic.fsync_dir(shard)  # type: ignore[arg-type]
            return True
        self.freshen(oid)
        return False

    def freshen(self, oid: str) -> None:
        """Touch an existing object so gc's grace period counts from now."""
        with contextlib.suppress(OSError):
            os.utime(self.path(oid))

    @contextlib.contextmanager
    def writer(self, *, suffix: str = "", executable: bool = False) -> Iterator[HashingWriter]:
        """Stream bytes into the cache; the object is published when the block ends.

        After the block, `w.oid` and `w.size` name what was stored. Used by
        serializers so a value never needs to exist twice in memory.
        """
        with atomic.temp_file(self.tmp_dir) as (tmp, f):
            w = HashingWriter(f)
            yield w
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
            w.oid = w.hexdigest() + suffix  # type: ignore[attr-defined]
            w.new = self._publish(tmp, w.oid, executable)  # type: ignore[attr-defined]
            self.provenance.clear(w.oid)  # type: ignore[attr-defined]  # produced here

    def add_bytes(self, data: bytes, *, suffix: str = "") -> Added:
        with self.writer(suffix=suffix) as w:
            w.write(data)
        return Added(w.oid, w.size, w.new)  # type: ignore[attr-defined]

    def add_stream(self, f: BinaryIO, *, executable: bool = False) -> Added:
        with self.writer(executable=executable) as w:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := f.readinto(buf):
                w.write(view[:n])
        return Added(w.oid, w.size, w.new)  # type: ignore[attr-defined]

    def add_file(
        self,
        src: Path | str,
        *,
        move: bool = False,
        executable: bool | None = None,
        state: Any = None,
    ) -> Added:
        """Add a workspace file; `state` (a `State`) saves rehashing unchanged files.

        `move=True` is for a file the caller will check out again: the file is
        made read-only and linked into the cache (no copy), the way DVC protects
        hardlinked outputs. Otherwise the bytes are copied and hashed in one
        pass, so what is stored always matches its name even if the source
        changes meanwhile; `state` is only asked for a hash it already knows
        (an unchanged big file is not read at all), never made to hash the
        file a second time before the copy.
        """
        st = os.stat(src)
        if executable is None:
            executable = bool(st.st_mode & stat.S_IXUSR)
        if move and st.st_size > 0:
            added = self._link_in(src, executable, state)
            if added is not None:
                return added
            st = os.stat(src)
        if state is not None and st.st_size >= MIN_SIZE:
            known = state.get(src, st)
            if known is not None and self.exists(known):
                self.freshen(known)
                return Added(known, st.st_size, False)
        try:
            with open(src, "rb", buffering=0) as f:
                added = self.add_stream(f, executable=executable)
        except DiskFull as e:
            raise DiskFull(
                f"no space left on device to add {src} to the cache in {self.root.parent}"
                f" ({e.reason})",
                FULL_FIX,
                e.reason,
            ) from None
        if state is not None:
            # What the copy hashed, under the stamp seen before it: a file
            # changed meanwhile has another stamp, so the entry never matches it.
            state.set(src, st, added.oid)
        return added

    def _link_in(self, src: Path | str, executable: bool, state: Any) -> Added | None:
        """Publish `src` itself as the object: chmod, hash once, hard-link.

        The file is linked under a temp name first and published only if the temp
        is still the inode that was hashed, unchanged: another process may replace
        `src` (a checkout, a writer) while it is hashed, and those bytes must not
        appear under this name. None means "copy instead".
        """
        mode = EXECUTABLE if executable else READ_ONLY
        before = os.stat(src)
        os.chmod(src, mode)
        st = os.stat(src)
        oid = state.hash(src, st) if state is not None else hash_file(src)
        self._ensure_dir(self._tmp_s)
        tmp = _temp_name(self._tmp_s, ".link")
        try:
            try:
                os.link(src, tmp)
            except FileNotFoundError:
                if not os.path.exists(src):
                    raise
                self._dirs.discard(self._tmp_s)  # tmp/ was removed since: make it again
                self._ensure_dir(self._tmp_s)
                os.link(src, tmp)
        except OSError:
            # Another filesystem or no hard links: copy instead, and leave the
            # workspace file as writable as it was.
            with contextlib.suppress(OSError):
                if os.stat(src).st_ino == st.st_ino:
                    os.chmod(src, stat.S_IMODE(before.st_mode))
            return None
        linked = os.stat(tmp)
        if _stamp(linked) != _stamp(st):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            return None  # replaced or written while hashed: copy what is there now
        new = self._publish(tmp, oid, executable)
        if new:
            linked = True
            self.provenance.clear(oid)  # a stale marker of a removed object
        else:  # already stored: by this very inode when `src` was checked out from it
            try:  # (inode only: adding what exists touched its mtime)
                obj = os.stat(self._final(oid))
                linked = (obj.st_dev, obj.st_ino) == (st.st_dev, st.st_ino)
            except OSError:
                linked = False
            if not linked:  # other bytes-equal inode: this machine produced them
                self.provenance.clear(oid)
        if state is not None and linked and st.st_size >= MIN_SIZE:
            with contextlib.suppress(OSError):
                state.set(src, os.stat(self._final(oid)), oid)  # linking changed ctime
        return Added(oid, st.st_size, new, linked=linked)

    def insert_verified(self, tmp: Path, expected: str, *, source: str = "") -> bool:
        """Publish a downloaded temp file only if it hashes to `expected`.

        Contract line 3: nothing from a remote enters the cache unchecked. On a
        mismatch the temp file is removed and CorruptObject names both.
        """
        try:
            _refuse_mismatch(hash_file(tmp), expected, source)
        except CorruptObject:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if self.fsync:
            _fsync_path(tmp)
        return self._publish_remote(tmp, expected)

    def insert_bytes(self, data: bytes, expected: str, *, source: str = "") -> bool:
        """Publish downloaded bytes only if they hash to `expected`; True if new.

        Contract line 3, hashing once: the bytes are checked in memory before a
        byte is written, then written and published without being read back.
        A mismatch writes nothing and raises CorruptObject naming both.
        """
        _refuse_mismatch(hash_bytes(data), expected, source)
        with atomic.temp_file(self.tmp_dir, ".pull") as (tmp, f):
            f.write(data)
            f.flush()
            if self.fsync:  # as `writer`: the bytes are on disk before their name is
                os.fsync(f.fileno())
            f.close()
            return self._publish_remote(tmp, expected)

    def _publish_remote(self, tmp: Path | str, oid: str) -> bool:
        """Publish downloaded bytes, marked as from a remote first (a reader never sees
        them unmarked); an object already here keeps its provenance."""
        if not self.exists(oid):
            self.provenance.mark(oid)  # a racing local add of it stays marked: distrust
        return self._publish(tmp, oid, False)

    def from_remote(self, oid: str) -> bool:
        """True while `oid`'s bytes are known only from a remote (see `provenance`)."""
        return self.provenance.is_remote(oid)

    # --- reading ------------------------------------------------------------
    def open(self, oid: str) -> BinaryIO:
        try:
            return open(self.path(oid), "rb")
        except FileNotFoundError:
            raise ObjectMissing(
                f"object {oid} is not in the cache",
                "run `pivot pull` (or re-materialize the asset that produced it)",
            ) from None

    def read_bytes(self, oid: str) -> bytes:
        with self.open(oid) as f:
            return f.read()

    def verify(self, oid: str) -> bool:
        """Rehash one object; True when its bytes match its name."""
        try:
            return hash_file(self.path(oid)) == oid[:16]
        except FileNotFoundError:
            return False

    def remove(self, oid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(oid))
        self.provenance.clear(oid)

    def size(self, oid: str) -> int:
        return self.path(oid).stat().st_size


def _refuse_mismatch(digest: str, expected: str, source: str) -> None:
    """CorruptObject unless `digest` (xxh64 of the bytes) names `expected`."""
    actual = digest + (oids.DIR_SUFFIX if oids.is_dir(expected) else "")
    if actual != expected:
        where = f" from {source}" if source else ""
        raise CorruptObject(
            f"object {expected}{where} hashes to {actual[:16]}",
            "the remote copy is corrupt or was tampered with; nothing was kept",
        )


def _fsync_path(path: Path | str) -> None:
    """Flush a file written elsewhere (a ranged download's temp) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMP = {"pid": -1, "token": ""}
_COUNTER = itertools.count()


def _temp_name(folder: str, hint: str) -> str:
    """`atomic.temp_name` without a Path and a fresh random token per call: a
    random token per process (renewed in a forked child) and a counter."""
    pid = os.getpid()
    if _TEMP["pid"] != pid:
        _TEMP.update(pid=pid, token=secrets.token_hex(4))
    return f"{folder}/{atomic.TMP_PREFIX}{pid}-{_TEMP['token']}{next(_COUNTER):x}{hint}"


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is the same inode with the same bytes (ctime moves on link)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
