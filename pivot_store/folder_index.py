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
from the scan, never from here). The value carries a checksum and is checked
row by row: anything damaged or foreign is "not known". This only ever saves
a hash.
"""

from __future__ import annotations

import os
import re
import time

from pivot_store.index_record import pack, settled, signature, unpack
from pivot_store.state import NullState

PREFIX = b"\x00folder-files v1\x00"
FORMAT = 1
_now = time.time_ns  # the moment before the build reads a file (tests move it)
_OID = re.compile(r"[0-9a-f]{16}")


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
        self._rows: list[list[object]] = []
        self.reused = 0  # how many files were not hashed (tests and the bench read it)

    def known(self, rel: str, st: os.stat_result) -> str | None:
        """The hash the file at `rel` had when its signature was `st`'s, or None."""
        row = self._known.get(rel)
        if row is None or tuple(row[1:6]) != signature(st):
            return None
        self.reused += 1
        return row[6]

    def remember(self, rel: str, st: os.stat_result, oid: str) -> None:
        """`rel` hashed to `oid` with the stat `st` taken before it was read."""
        if settled(st, self.started):
            self._rows.append([rel, *signature(st), oid])

    def flush(self) -> None:
        """Replace the folder's rows with this build's (what it did not list is gone)."""
        self.state.put_many([(self.key, pack([FORMAT, self._rows]))])


def _load(value: bytes | None) -> dict[str, list]:
    """rel -> its row; {} for anything but rows `flush` wrote. The signature's
    numbers are only ever compared for equality with a fresh stat's."""
    data = unpack(value)
    if type(data) is not list or len(data) != 2 or data[0] != FORMAT:
        return {}
    rows = data[1]
    if type(rows) is not list:
        return {}
    known: dict[str, list] = {}
    match = _OID.fullmatch
    for row in rows:
        if type(row) is not list or len(row) != 7:
            return {}
        rel, oid = row[0], row[6]
        if type(rel) is not str or type(oid) is not str or not match(oid):
            return {}
        known[rel] = row
    return known
