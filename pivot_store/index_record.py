"""Index records: the values the state db's indexes keep beside the file hashes.

Each is JSON behind the xxh64 of that JSON, so a value damaged on disk (or
written by another format) reads as "not known" and is rebuilt from its
source, never trusted. Only plain JSON goes in: nothing read back runs code.
"""

from __future__ import annotations

import json

import xxhash

_DIGEST = 8


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
