"""`LocalRemote`: a folder (file:// or a plain path) as a remote.

It publishes the way the cache does: a temp file in the target folder,
fsynced, made read-only, then `os.link`ed to its final name, which fails
rather than replace an existing key (contract line 2). Readers skip temp files.
A push hands it its objects and entries in batches (`aput_batch`), each made
durable by one sync of the filesystem before any is linked (`group_commit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pivot_store import atomic, group_commit
from pivot_store.errors import RemoteError
from pivot_store.remote.base import Listed, Remote


class LocalRemote(Remote):
    """A folder (file:// or a path): publishes like the cache, by temp + os.link."""

    kind = "local"
    batches = True
    #: Puts per group commit (`group_commit.publish`): one sync pair each.
    BATCH = 1000

    def _p(self, key: str) -> Path:
        return Path(key)

    def _check(self, *, create: bool, must_exist: bool) -> bool:
        root = Path(self.root)
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RemoteError(
                    f"remote {self.name!r} ({self.url}): cannot create {root}: {e.strerror}",
                    "fix the path or its permissions",
                ) from None
            return True
        exists = root.is_dir()
        if must_exist and not exists:
            raise RemoteError(
                f"remote {self.name!r} ({self.url}): {root} does not exist",
                "fix the URL with `pivot remote add`, or push to it first",
            )
        return exists

    def exists(self, key: str) -> bool:
        return os.path.exists(key)

    def list_names(self, key: str) -> list[str]:
        try:
            return [n for n in os.listdir(key) if not atomic.is_temp(n)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_info(self, key: str) -> list[Listed]:
        """Every file under `key` (temp files of writers skipped), with `st_mtime`."""
        out: list[Listed] = []
        for folder, dirs, files in os.walk(key):
            dirs.sort()
            for n in sorted(files):
                if atomic.is_temp(n):
                    continue
                path = os.path.join(folder, n)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                out.append(Listed(path, st.st_size, st.st_mtime))
        return out

    def delete_keys(self, keys: list[str]) -> None:
        for k in keys:
            try:
                os.unlink(k)
            except FileNotFoundError:
                continue

    def _publish(self, key: str, write: Any) -> bool:
        """Temp file beside `key` (created read-only, written, fsynced), then linked.

        String paths and no second stat or chmod: a first push of 10,000 small
        objects is mostly these few system calls per object.
        """
        if os.path.exists(key):
            return False
        folder = os.path.dirname(key)
        tmp = atomic.fast_temp_name(folder)
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except OSError as e:
            raise atomic.disk_full(e, folder) or e from None
        try:
            with open(fd, "wb", closefd=False) as f:
                write(f)
            os.fsync(fd)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            full = atomic.disk_full(e, folder)
            if full is None:
                raise
            raise full from None
        finally:
            os.close(fd)
        return atomic.publish_new(tmp, key)

    def put_file(self, local: Path, key: str) -> bool:
        def write(f: Any) -> None:
            with open(local, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        return self._publish(key, write)

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self._publish(key, lambda f: f.write(data))

    async def aput_batch(
        self,
        puts: Sequence[tuple[str, bytes | Path]],
        jobs: int = 20,
        done: Callable[[int, bool | BaseException], None] | None = None,
    ) -> list[bool | BaseException]:
        """`Remote.aput_batch` by group commit: `BATCH` puts per sync of the filesystem.

        One batch at a time, on a worker thread (the event loop stays free for
        the large objects uploading beside it): two in flight measured slower,
        their threads contend for the GIL on every system call, and the syncs
        are a small part of a batch. A put that fails in its batch (a full disk,
        a denied folder) is tried once more on its own through
        `Remote.aput_batch`, so its error is sorted and retried exactly as a
        single put's would be (a denied folder stops the transfer).
        """
        outcomes: list[bool | BaseException] = [False] * len(puts)
        failed: list[int] = []

        async def chunk(start: int) -> None:
            part = await asyncio.to_thread(group_commit.publish, puts[start : start + self.BATCH])
            for i, out in enumerate(part, start):
                outcomes[i] = out
                if isinstance(out, BaseException):
                    failed.append(i)
                elif done is not None:
                    done(i, out)

        for start in range(0, len(puts), self.BATCH):
            await chunk(start)
        if failed:
            failed.sort()
            again = await super().aput_batch([puts[i] for i in failed], jobs)
            for i, out in zip(failed, again, strict=True):
                outcomes[i] = out
                if done is not None:
                    done(i, out)
        return outcomes

    def get_bytes(self, key: str) -> bytes:
        return self._p(key).read_bytes()

    def get_file(self, key: str, local: Path) -> None:
        shutil.copyfile(key, local)
