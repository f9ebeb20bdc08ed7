"""xxh64 of bytes, files and streams, and the canonical JSON that records hash.

Files are read with `readinto` into one reused 1 MiB buffer: no per-chunk
allocation, no per-byte Python work, so hashing runs at the speed of a plain
`xxhash.xxh64` loop (bench/store.py measures it).
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO

import xxhash

CHUNK = 1 << 20


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh64_hexdigest(data)


def hash_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb", buffering=0) as f:
        return hash_stream(f)


def hash_stream(f: BinaryIO) -> str:
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
