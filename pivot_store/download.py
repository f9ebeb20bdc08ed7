"""One object from a remote into the cache, hash-checked (contract line 3).

Its own noun because every fetch path ends here: `transfer.fetch`'s batches,
a run-cache hit's objects (pivot_dagster) and the prefetch's downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from pivot_store import atomic
from pivot_store.objects import ObjectStore
from pivot_store.remote import MULTIPART_CHUNK, Remote, aretrying

__all__ = ["WRITE_OFF_LOOP", "adownload", "download", "is_large", "streams"]

#: Downloaded objects from this size on are hashed and written off the event loop
#: (`adownload`); below it a thread hop costs more than the write (2,000 x 4 KiB).
WRITE_OFF_LOOP = 1 << 20


def streams(size: int | None) -> bool:
    """Objects fetched into a temp file, not whole into memory (see `adownload`)."""
    return size is not None and size >= WRITE_OFF_LOOP


def is_large(size: int | None) -> bool:
    """Objects that go multipart / in ranged GETs."""
    return size is not None and size >= 2 * MULTIPART_CHUNK


def download(objects: ObjectStore, remote: Remote, oid: str, size: int | None = None) -> bool:
    """Bring one object into the cache, hash-checked (contract line 3); see `adownload`."""
    return remote.run(adownload, objects, remote, oid, size)


async def adownload(
    objects: ObjectStore, remote: Remote, oid: str, size: int | None = None
) -> bool:
    """Bring one object into the cache, hash-checked (contract line 3).

    A small object arrives in one GET and is hashed in memory before a byte
    is written (`ObjectStore.insert_bytes`). One of `WRITE_OFF_LOOP` bytes or
    more whose size is known is streamed into a temp file (on S3 in ranged
    GETs, parallel for a large one; never past the size its lock names) and
    hashed from it before publishing (`insert_verified`). A mismatch raises
    CorruptObject naming the object and the remote, and nothing is kept.
    True if newly added.

    Why a file from 1 MiB on: read whole, aiohttp joins a body's blocks into
    one fresh buffer (16 ms of CPU per 10 MiB here, with the GIL held). A
    fetch of 10 x 10 MiB from moto (2 cores, load 0.2-0.9, 8 rounds each)
    cost 0.12-0.37 s of CPU streamed, 0.15-0.47 s read whole.
    Hashing and writing a body read whole run on a worker thread from
    `WRITE_OFF_LOOP` bytes on (the object's size unknown).
    """
    key = remote.object_key(oid)
    source = f"remote {remote.name!r} ({remote.url})"
    if streams(size):
        objects.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = atomic.temp_name(objects.tmp_dir, ".pull")
        try:
            await aretrying(remote, lambda: remote.aget_file(key, tmp, size), key)
            return await asyncio.to_thread(objects.insert_verified, tmp, oid, source=source)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    data = await aretrying(remote, lambda: remote.aget_bytes(key), key)
    if len(data) >= WRITE_OFF_LOOP:
        return await asyncio.to_thread(objects.insert_bytes, data, oid, source=source)
    return objects.insert_bytes(data, oid, source=source)
