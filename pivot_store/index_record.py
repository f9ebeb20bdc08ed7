"""Index records: the values the state db's indexes keep beside the file hashes.

Each is JSON behind the xxh64 of that JSON, so a value damaged on disk (or
written by another format) reads as "not known" and is rebuilt from its
source, never trusted. Only plain JSON goes in: nothing read back runs code.

Every index keys what it remembers by a file's stat `signature` and records it
only when `settled`: the one rule, written once here.
"""

from __future__ import annotations

import json
import os

import xxhash

from pivot_store.state import RACY_NS

_DIGEST = 8


def signature(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """(device, inode, size, mtime_ns, ctime_ns): an in-place rewrite that puts the
    mtime back still changes the ctime; a replaced file has another inode."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settled(st: os.stat_result, now_ns: int) -> bool:
    """True when `st` is old enough that a later change must show in the signature.

    `now_ns` must be a moment taken before the file's bytes were read: a write
    after that read then lands in a later timestamp tick than `st`'s."""
    return now_ns - max(st.st_mtime_ns, st.st_ctime_ns) >= RACY_NS


def pack(data: object) -> bytes:
    body = json.dumps(data, separators=(",", ":")).encode()
    return xxhash.xxh64_digest(body) + body


def unpack(value: bytes | None) -> object:
    """What `pack` was given, or None for a missing, damaged or foreign value."""
    if value is None or len(value) <= _DIGEST:
        return None
    body = value[_DIGEST:]
    if xxhash.xxh64_digest(body) != value[:_DIGEST]:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None
