"""xxh64 of bytes, files and streams, and the canonical JSON that records hash.

A file of at most 1 MiB is read in one call and hashed in one call; a bigger
one is read with `readinto` into a 1 MiB buffer reused by every file hashed on
the same thread: no per-chunk (or per-file) allocation, no per-byte Python
work, so hashing runs at the speed of a plain `xxhash.xxh64` loop
(bench/store.py measures it). Allocating and zeroing a fresh 1 MiB buffer per
file cost 5x the hashing of a 4 KiB file.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, BinaryIO

import xxhash

CHUNK = 1 << 20
_local = threading.local()


def chunk_buffer() -> tuple[bytearray, memoryview]:
    """This thread's reusable CHUNK-sized buffer (and a view of it).

    Only for loops that finish with the buffer before returning: a caller must
    not hold on to it, nor call back into something that uses it meanwhile.
    """
    try:
        return _local.buf
    except AttributeError:
        buf = bytearray(CHUNK)
        _local.buf = (buf, memoryview(buf))
        return _local.buf


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh64_hexdigest(data)


def hash_file(path: str | os.PathLike[str], size: int | None = None) -> str:
    """xxh64 of a file; `size` (from a stat the caller already has) saves an fstat.

    `size` only picks the strategy: a file that changed size since is still
    hashed to its end.
    """
    with open(path, "rb", buffering=0) as f:
        if size is None:
            size = os.fstat(f.fileno()).st_size
        if size <= CHUNK:
            # One read to EOF (it loops until a read returns nothing, whatever
            # the file's size now) and one hash call.
            return xxhash.xxh64_hexdigest(f.read())
        return _hash_fileio(f)


def _hash_fileio(f: BinaryIO) -> str:
    h = xxhash.xxh64()
    buf, view = chunk_buffer()
    readinto = f.readinto
    while n := readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def hash_stream(f: BinaryIO) -> str:
    """xxh64 of what `f` yields; any object with `readinto` (its own buffer, since
    `f` may be anything, even something that hashes on this thread itself)."""
    h = xxhash.xxh64()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    readinto = f.readinto
    while n := readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def hash_json(value: Any) -> str:
    return hash_bytes(canonical_json(value))


class HashingWriter:
    """A binary file wrapper that hashes what passes through `write`.

    Lets a serializer stream straight into a cache temp file: one pass over the
    bytes gives both the stored copy and its name.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._h = xxhash.xxh64()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._h.update(data)
        n = self._f.write(data)
        self.size += len(data)
        return n if n is not None else len(data)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        """Serializers (pyarrow, numpy) may close their sink; the store closes the file."""

    def hexdigest(self) -> str:
        return self._h.hexdigest()
