"""FolderIndex: each file's hash in a tracked folder, by that file's stat signature.

A folder whose signature changed (one file edited or added among 10,000) was
rebuilt by hashing every file again: 0.1-0.3 s per 10,000 small files, on
every `pivot status` and every add. `manifest.build` (the one builder that
status, add and file deps use) keeps here, under the folder's absolute path,
each file's relative path, signature and hash as it last hashed them, and
hashes again only the files whose signature is not the recorded one.

It follows the rule of the other indexes (`index_record`): a hash is reused
only when the whole signature (device, inode, size, mtime_ns, ctime_ns) is
equal, and a row is recorded only when the file was `settled` at a moment
taken before any of its bytes were read; a file in the racy window is hashed
again next time. An in-place rewrite that puts the mtime back still moves the
ctime; a replaced file has another inode; an added file has no row; a removed
one is not listed by the scan; a chmod moves the ctime (and the mode is read
from the scan, never from here). The value carries a checksum and its layout
is checked whole: anything damaged or foreign is "not known". Nothing read
back runs code; a hash read back is 8 bytes, so always a well-formed id. This
only ever saves a hash.
"""

from __future__ import annotations

import os
import struct
import time

import xxhash

from pivot_store.index_record import settled, signature
from pivot_store.state import NullState

PREFIX = b"\x00folder-files v1\x00"
_now = time.time_ns  # the moment before the build reads a file (tests move it)
# A value: xxh64 of the body, then the body: the row count, one fixed record a
# row (the signature and the hash's 8 bytes), and the relative paths joined by
# NUL (a name never holds one). Binary: a folder of 10,000 files is read and
# written in a few ms, where JSON took 30.
_DIGEST = 8
_COUNT = struct.Struct("<I")
_ROW = struct.Struct("<QQQqq8s")


def key(root: os.PathLike[str] | str) -> bytes:
    return PREFIX + os.fsencode(os.path.abspath(root))


class FolderIndex:
    """The known file hashes of one folder, for one build of its manifest."""

    def __init__(self, state: NullState, root: os.PathLike[str] | str) -> None:
        self.state = state
        self.key = key(root)
        # Taken before the build reads any file: a write after a read lands in a
        # later tick than a stamp this much older (`settled`).
        self.started = _now()
        self._known = _load(state.get_many([self.key])[0])
        self._rows: list[bytes] = []
        self._names: list[str] = []
        self.reused = 0  # how many files were not hashed (tests and the bench read it)

    def known(self, rel: str, st: os.stat_result) -> str | None:
        """The hash the file at `rel` had when its signature was `st`'s, or None."""
        row = self._known.get(rel)
        if row is None or row[:5] != signature(st):
            return None
        self.reused += 1
        return row[5].hex()

    def remember(self, rel: str, st: os.stat_result, oid: str) -> None:
        """`rel` hashed to `oid` with the stat `st` taken before it was read."""
        if len(oid) == 16 and settled(st, self.started):  # a file's id: 8 bytes
            self._rows.append(_ROW.pack(*signature(st), bytes.fromhex(oid)))
            self._names.append(rel)

    def flush(self) -> None:
        """Replace the folder's rows with this build's (what it did not list is gone)."""
        if self._known and self.reused == len(self._known) == len(self._rows):
            return  # every row was used as it is, and no other row is new: the same table
        names = "\0".join(self._names).encode("utf-8", "surrogateescape")
        body = _COUNT.pack(len(self._rows)) + b"".join(self._rows) + names
        self.state.put_many([(self.key, xxhash.xxh64_digest(body) + body)])


def _load(value: bytes | None) -> dict[str, tuple]:
    """rel -> (dev, ino, size, mtime_ns, ctime_ns, hash bytes); {} for anything but
    what `flush` wrote (a short, damaged or foreign value)."""
    if value is None or len(value) < _DIGEST + _COUNT.size:
        return {}
    body = memoryview(value)[_DIGEST:]
    if xxhash.xxh64_digest(body) != value[:_DIGEST]:
        return {}
    (count,) = _COUNT.unpack_from(body)
    end = _COUNT.size + count * _ROW.size
    if count == 0 or len(body) <= end:
        return {}
    try:
        names = bytes(body[end:]).decode("utf-8", "surrogateescape").split("\0")
    except UnicodeDecodeError:
        return {}
    if len(names) != count:
        return {}
    return dict(zip(names, _ROW.iter_unpack(body[_COUNT.size : end]), strict=True))
