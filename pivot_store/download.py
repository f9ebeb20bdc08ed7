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

__all__ = ["WRITE_OFF_LOOP", "adownload", "download", "is_large"]

#: Downloaded objects from this size on are hashed and written off the event loop
#: (`adownload`); below it a thread hop costs more than the write (2,000 x 4 KiB).
WRITE_OFF_LOOP = 1 << 20


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

    Each is hashed exactly once: a small object arrives in one GET and is
    hashed in memory before a byte is written (`ObjectStore.insert_bytes`); a
    large one is fetched in parallel ranges into a temp file and hashed from it
    before publishing (`insert_verified`). A mismatch raises CorruptObject
    naming the object and the remote, and nothing is kept. True if newly added.

    From `WRITE_OFF_LOOP` bytes on, hashing and writing run on a worker thread:
    on the loop, each 10 MiB write (~20 ms of kernel time here) held up every
    other download of the batch.
    """
    key = remote.object_key(oid)
    source = f"remote {remote.name!r} ({remote.url})"
    if is_large(size):
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
