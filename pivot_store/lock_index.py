"""LockIndex: what each lock file says, remembered by the file's stat signature.

`pivot status`, `push` and `gc` read every lock of a project; parsing and
validating 10,000 locks takes seconds, and most of them did not change since
the last command. So each lock's summary (its name, fingerprint, entry id and
outputs: all those commands need) is kept in the state db under the lock's
path, with the signature (device, inode, size, mtime_ns, ctime_ns) of the
file it was read from. An unchanged lock then costs one `stat`.

A stale summary is the worst outcome, so a summary is used only when every
part of the signature is equal, and it is recorded only when the file's mtime
and ctime are at least `RACY_NS` older than the moment of recording ("racy
git"): a rewrite within the same timestamp tick could otherwise keep the
signature. An atomic rewrite (temp + rename) gets a new inode and ctime; an
in-place edit a new mtime and ctime, even when `touch` puts the mtime back.
Each value carries its own checksum: a damaged one is a miss, re-read from
the lock. Everything else (a lock that does not parse) is what `read_lock`
says, never cached.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pivot_store import atomic, keys
from pivot_store.errors import LockError
from pivot_store.hashing import hash_json
from pivot_store.index_prune import prune
from pivot_store.index_record import pack, settled, signature, unpack
from pivot_store.lockfile import FIX, Lock, lock_from_bytes
from pivot_store.state import NullState

__all__ = ["LockIndex", "LockSummary", "OutputSummary", "settled", "signature"]
FORMAT = 1
_now = time.time_ns  # the moment of recording (tests move it)
_PREFIX = b"\x00lock-index v1\x00"


class OutputSummary(NamedTuple):
    """An `OutputRecord`'s fields that status, push and gc read."""

    name: str
    path: str | None
    hash: str
    size: int
    kind: str


@dataclass(frozen=True, slots=True)
class LockSummary:
    """A lock as status, push and gc need it, without its fingerprint parts."""

    name: str
    fingerprint: str
    entry_id: str  # `runcache.entry_id` of the lock: its run-cache entry's name
    outputs: tuple[OutputSummary, ...]

    @classmethod
    def of(cls, lock: Lock) -> LockSummary:
        return cls(
            lock.name,
            lock.fingerprint,
            hash_json(lock.to_data()),  # = runcache.entry_id (tests/store/test_lock_index.py)
            tuple(OutputSummary(o.name, o.path, o.hash, o.size, o.kind) for o in lock.outputs),
        )

    def to_json(self) -> list:
        return [FORMAT, self.name, self.fingerprint, self.entry_id, [list(o) for o in self.outputs]]

    @classmethod
    def from_json(cls, data: object) -> LockSummary | None:
        """The summary `to_json` wrote, or None for anything else (a miss)."""
        if type(data) is not list or len(data) != 5 or data[0] != FORMAT:
            return None
        _, name, fp, eid, outs = data
        if not (type(name) is str and type(fp) is str and type(eid) is str and type(outs) is list):
            return None
        outputs = []
        for o in outs:
            if type(o) is not list or len(o) != 5:
                return None
            oname, path, oid, size, kind = o
            if not (
                type(oname) is str
                and (path is None or type(path) is str)
                and type(oid) is str
                and type(size) is int
                and kind in ("file", "dir")
            ):
                return None
            outputs.append(OutputSummary(oname, path, oid, size, kind))
        return cls(name, fp, eid, tuple(outputs))


class LockIndex:
    """The summaries of the locks under `stages_dir`, through the state db."""

    def __init__(self, stages_dir: Path, state: NullState) -> None:
        self.stages_dir = Path(stages_dir)
        self.state = state

    def names(self) -> list[str]:
        """Every lock's name, sorted (what `Repo.lock_names` returns)."""
        return sorted(name for name, _, _ in self._walk(check=False))

    def paths(self) -> list[str]:
        """Every lock file's path, in the order of their names."""
        return [path for _, path, _ in sorted(self._walk())]

    def summaries(self, names: list[str] | None = None) -> list[LockSummary]:
        """The named locks' summaries (all when None, sorted by name); a name with no
        lock is a LockError, a lock that does not parse is its LockError."""
        if names:
            found = []
            for name in names:
                path = keys.lock_path(self.stages_dir, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    raise LockError(
                        f"no lock named {name!r}", "run `pivot status` to list locks"
                    ) from None
                found.append((os.fspath(path), st))
            return self._read(found, missing_ok=False)
        found = [(p, st) for _, p, st in sorted(self._walk())]
        summaries = self._read(found, missing_ok=True)
        # Every lock was listed: the entries of deleted ones go (`index_prune`).
        prune(self.state, _PREFIX, [_PREFIX + os.fsencode(p) for p, _ in found])
        return summaries

    # --- listing ------------------------------------------------------------
    def _walk(self, *, check: bool = True) -> list[tuple[str, str, os.stat_result]]:
        """(name, path, stat) of each lock file. With `check`, names are validated
        (`validate_name`) and a symlink is followed only as `keys.lock_path` allows
        (inside `stages_dir`); without, this is only a listing, as `rglob` was."""
        out: list[tuple[str, str, os.stat_result]] = []
        stack = [(os.fspath(self.stages_dir), "")]
        while stack:
            folder, prefix = stack.pop()
            try:
                it = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, prefix + e.name + "/"))
                        continue
                    if not e.name.endswith(keys.LOCK_SUFFIX) or atomic.is_temp(e.name):
                        continue
                    name = prefix + e.name[: -len(keys.LOCK_SUFFIX)]
                    if not check:
                        out.append((name, e.path, None))  # type: ignore[arg-type]
                        continue
                    try:
                        if e.is_symlink():
                            keys.lock_path(self.stages_dir, name)  # refuses one leading out
                            st = os.stat(e.path)
                            if not stat.S_ISREG(st.st_mode):
                                continue
                        else:
                            keys.validate_name(name)
                            st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed while listed
                        continue
                    out.append((name, e.path, st))
        return out

    # --- reading ------------------------------------------------------------
    def _read(
        self, found: list[tuple[str, os.stat_result]], *, missing_ok: bool
    ) -> list[LockSummary]:
        raw = self.state.get_many([_PREFIX + os.fsencode(p) for p, _ in found])
        summaries: list[LockSummary] = []
        record: list[tuple[bytes, bytes]] = []
        now = _now()
        for (path, st), value in zip(found, raw, strict=True):
            summary = _cached(value, signature(st))
            if summary is None:
                parsed = _parse(path, missing_ok)
                if parsed is None:
                    continue
                summary, read_st = parsed
                if settled(read_st, now):
                    data = [list(signature(read_st)), summary.to_json()]
                    record.append((_PREFIX + os.fsencode(path), pack(data)))
            summaries.append(summary)
        self.state.put_many(record)
        return summaries


def _cached(value: bytes | None, sig: tuple[int, ...]) -> LockSummary | None:
    data = unpack(value)
    if type(data) is not list or len(data) != 2 or data[0] != list(sig):
        return None
    return LockSummary.from_json(data[1])


def _parse(path: str, missing_ok: bool) -> tuple[LockSummary, os.stat_result] | None:
    """The lock at `path` and the stat of the very file its bytes came from."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if missing_ok:  # deleted since it was listed: it is gone from the answer too
            return None
        raise LockError(f"lock {path} does not exist", "materialize the asset first") from None
    except OSError as e:
        raise LockError(f"lock {path} cannot be read: {e.strerror}", FIX) from None
    try:
        st = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read()
    finally:
        os.close(fd)
    return LockSummary.of(lock_from_bytes(raw, path)), st
