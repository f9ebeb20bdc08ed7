"""`Remote`: the interface every backend shares, and the generic fsspec backend.

Transfer code never asks what it is talking to: it names keys with
`object_key` / `key`, asks `present`, and reads and writes through the
async face (`aget_bytes`, `aput_bytes`, ...), driving whole batches with
`run`. This class is also the backend for any fsspec filesystem without a
better one (memory, gcs, az), whose async face runs the sync methods on worker
threads. Every write creates, never replaces (contract line 2): by the store's
own conditional write where it has one (`CREATE_MODES`), else by a check then a
put (docs/remotes.md names the backends where two creators can race).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pivot_store import keys
from pivot_store import oid as oids
from pivot_store.aio import amap, run_new_loop
from pivot_store.errors import RemoteError
from pivot_store.remote.errors import aretrying

#: Below this many objects one HEAD each beats listing their prefixes; above
#: it, one LIST per touched prefix (bench/remote.py --probe measures it).
HEAD_MAX = 16
T = TypeVar("T")

# Check levels, each implying the ones below it (see `Remote.check`).
_REACHABLE, _EXISTS, _READY = 1, 2, 3

#: How the generic backend creates a key without replacing one, by protocol.
#: "conditional": the store refuses a write onto an existing key (gcsfs
#: `mode="create"` sends `ifGenerationMatch=0`; adlfs `mode="create"` is
#: `overwrite=False`, which the Azure SDK sends as `If-None-Match: *`).
#: "locked": fsspec's memory store is one dict per process and its own
#: `mode="create"` is check-then-put, so the check and the put run under one
#: process-wide lock. Any other protocol: check-then-put, a race window.
CREATE_MODES = {
    "gs": "conditional", "gcs": "conditional",
    "az": "conditional", "abfs": "conditional", "abfss": "conditional",
    "memory": "locked",
}  # fmt: skip
_MEMORY_LOCK = threading.Lock()


@dataclass(frozen=True)
class Listed:
    """One key found by `Remote.list_info`: its size and the store's own mtime.

    `mtime` (Unix seconds) is the remote's clock (S3 `LastModified`, a
    folder's `st_mtime`), not the writer's claim: remote gc's grace period
    is measured on it.
    """

    key: str
    size: int
    mtime: float


def info_mtime(info: dict[str, Any]) -> float | None:
    """The modification time in an fsspec `info` dict, whatever the backend calls it."""
    for name in ("LastModified", "last_modified", "mtime", "updated", "modified", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


class Remote:
    """The generic backend: any fsspec filesystem (memory://, gs://, az://, ...)."""

    kind = "fsspec"

    def __init__(
        self, name: str, url: str, fs: Any, root: str, make_fs: Callable[[], Any] | None = None,
        *, identity: str | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.url = url
        self._fs = fs
        self._make_fs = make_fs
        self.root = root.rstrip("/")
        #: Who this remote is, for `KnownIndex`: the URL plus the options that
        #: change which store it names (endpoint, region, profile; `from_url`).
        self.identity = identity or url
        #: How a key is created without replacing one (`CREATE_MODES`).
        self.create = CREATE_MODES.get(url.partition("://")[0], "check")
        self._checked = 0
        self._check_lock = threading.Lock()
        #: The store's own clock (Unix seconds) from its last listing's `Date`
        #: header, where the backend has one (S3): remote gc's grace uses it.
        self.server_time: float | None = None

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, made on first use (importing s3fs costs 0.4 s)."""
        if self._fs is None and self._make_fs is not None:
            self._fs = self._make_fs()
        return self._fs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.url}>"

    # --- keys ---------------------------------------------------------------
    def object_key(self, oid: str) -> str:
        return f"{self.root}/files/{oids.relpath(oid)}"

    def key(self, rel: str) -> str:
        """An absolute key for a path relative to the remote root (validated)."""
        return f"{self.root}/{keys.validate_name(rel)}"

    # --- checks -------------------------------------------------------------
    def check(self, *, create: bool = False, must_exist: bool = True) -> None:
        """Fail fast (RemoteError) when the remote cannot be used at all.

        Three levels, each implying the ones below: reachable
        (`must_exist=False`), existing (the default), ready to write
        (`create=True`: the root is made if missing). A level passed once (or
        a higher one) returns at once, and a check that proved the root exists
        passes them all (creating an existing root changes nothing), so a
        Remote kept for the process (`Repo.remote`) is checked once, however
        many pushes and fetches use it. A failed check is not remembered.
        """
        level = _READY if create else _EXISTS if must_exist else _REACHABLE
        with self._check_lock:
            if self._checked >= level:
                return
            proved = self._check(create=create, must_exist=must_exist)
            self._checked = _READY if proved else level

    def _check(self, *, create: bool, must_exist: bool) -> bool:
        """The backend's own check (see `check`); True if it proved the root exists."""
        if create:
            with contextlib.suppress(FileExistsError):
                self.fs.makedirs(self.root, exist_ok=True)
        return create

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(key))

    def list_names(self, key: str) -> list[str]:
        """Base names directly under folder `key`; empty when it does not exist."""
        try:
            entries = self.fs.ls(key, detail=False)
        except FileNotFoundError:
            return []
        return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def list_dirs(self, key: str) -> list[str]:
        return self.list_names(key)

    def list_info(self, key: str) -> list[Listed]:
        """Every key under folder `key`, at any depth, with size and mtime (remote gc).

        A backend that reports no time gives `now`: such a key always looks
        young, so gc's grace keeps it rather than guessing.
        """
        import time

        try:
            found = self.fs.find(key, detail=True)
        except FileNotFoundError:
            return []
        now = time.time()
        out = []
        for k, info in sorted(found.items()):
            if info.get("type") == "directory":
                continue
            mtime = info_mtime(info)
            out.append(Listed(str(k), int(info.get("size") or 0), now if mtime is None else mtime))
        return out

    def delete_keys(self, keys: list[str]) -> None:
        """Delete `keys` (already gone is fine). Only remote gc deletes."""
        for k in keys:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(k)

    def present(self, wanted: Iterable[str], *, map_fn: Any = None, jobs: int = 20) -> set[str]:
        """Which of `wanted` the remote has (see `apresent`). `map_fn` is ignored."""
        return self.run(self.apresent, set(wanted), jobs)

    async def apresent(self, wanted: Iterable[str], jobs: int = 20) -> set[str]:
        """Which of `wanted` the remote has: HEADs for a handful, else one LIST per prefix.

        The prefix LISTs run `jobs` at a time. When the first prefix listed is
        empty the remote is probably young, so one delimited LIST of `files/`
        names the prefixes that exist at all and the absent ones are skipped.
        """
        wanted = set(wanted)
        if not wanted:
            return set()
        if len(wanted) <= HEAD_MAX:

            async def head(o: str) -> str | None:
                key = self.object_key(o)
                ok = await aretrying(self, lambda: self.aexists(key), key)
                return o if ok else None

            return {o for o in await amap(jobs, head, sorted(wanted)) if o}
        by_prefix: dict[str, set[str]] = {}
        for o in wanted:
            by_prefix.setdefault(o[:2], set()).add(o)

        async def one(prefix: str) -> set[str]:
            key = f"{self.root}/files/{prefix}"
            names = await aretrying(self, lambda: self.alist_names(key), f"listing {key}")
            return {prefix + n for n in names} & by_prefix[prefix]

        prefixes = sorted(by_prefix)
        out = await one(prefixes[0])
        rest = prefixes[1:]
        if not out and len(rest) > HEAD_MAX:
            top = f"{self.root}/files"
            exist = set(await aretrying(self, lambda: self.alist_dirs(top), f"listing {top}"))
            rest = [p for p in rest if p in exist]
        for s in await amap(jobs, one, rest):
            out |= s
        return out

    # --- running coroutines ---------------------------------------------------
    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, jobs: int = 20) -> T:
        """Run the coroutine function `fn(*args)` to completion from sync code."""
        return run_new_loop(fn, args, jobs)

    # --- the async interface (default: the sync methods on worker threads) ---
    async def aexists(self, key: str) -> bool:
        return await asyncio.to_thread(self.exists, key)

    async def alist_names(self, key: str) -> list[str]:
        return await asyncio.to_thread(self.list_names, key)

    async def alist_dirs(self, key: str) -> list[str]:
        return await asyncio.to_thread(self.list_dirs, key)

    async def aput_file(self, local: Path, key: str) -> bool:
        return await asyncio.to_thread(self.put_file, local, key)

    async def alist_info(self, key: str) -> list[Listed]:
        return await asyncio.to_thread(self.list_info, key)

    async def adelete_keys(self, keys: list[str]) -> None:
        await asyncio.to_thread(self.delete_keys, keys)

    async def aput_bytes(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self.put_bytes, key, data)

    async def aget_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.get_bytes, key)

    async def aget_file(self, key: str, local: Path, size: int | None = None) -> None:
        await asyncio.to_thread(self.get_file, key, local)

    # --- writing: create, never replace --------------------------------------
    #: True when `aput_batch` makes a whole batch durable at once (a folder
    #: remote's group commit), so a transfer should hand it many puts in one
    #: call; False: the transfer puts one object at a time, as it always has.
    batches = False

    async def aput_batch(
        self,
        puts: Sequence[tuple[str, bytes | Path]],
        jobs: int = 20,
        done: Callable[[int, bool | BaseException], None] | None = None,
    ) -> list[bool | BaseException]:
        """Create each `(key, bytes or local file)` unless the key exists, never replacing.

        Outcomes in `puts` order: True if written, False if it existed, or the
        error (as `aretrying` left it) for that put alone; `done(i, outcome)`
        is called as each is final (progress). A permanent error (RemoteError)
        is raised and stops the batch, as it stops a transfer. This default is
        one create per put, `jobs` at a time; a backend that can commit a
        batch at once overrides it and sets `batches`.
        """

        async def one(i: int) -> bool | BaseException:
            key, src = puts[i]
            out: bool | BaseException
            try:
                if isinstance(src, bytes):
                    out = await aretrying(self, lambda: self.aput_bytes(key, src), key)
                else:
                    out = await aretrying(self, lambda: self.aput_file(src, key), key)
            except RemoteError:
                raise
            except Exception as e:
                out = e
            if done is not None:
                done(i, out)
            return out

        return await amap(jobs, one, range(len(puts)))

    def put_file(self, local: Path, key: str) -> bool:
        """Upload `local` to `key` unless `key` exists; True if this call wrote it."""
        return self._create(key, lambda **kw: self.fs.put_file(str(local), key, **kw))

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self._create(key, lambda **kw: self.fs.pipe_file(key, data, **kw))

    def _create(self, key: str, write: Callable[..., Any]) -> bool:
        """Create `key` with `write(**kw)` unless it exists; True if this call wrote it.

        How depends on `self.create` (see `CREATE_MODES`): the store's own
        conditional write (`mode="create"`, FileExistsError when the key is
        there), a check-then-put under the process-wide memory lock, or, for
        a filesystem with neither, a plain check-then-put: two creators at
        the same moment can both write (docs/remotes.md names these).
        """
        if self.create == "conditional":
            try:
                write(mode="create")
            except FileExistsError:
                return False
            return True
        with _MEMORY_LOCK if self.create == "locked" else contextlib.nullcontext():
            if self.fs.exists(key):
                return False
            write()
            return True

    # --- reading ------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(key)

    def get_file(self, key: str, local: Path) -> None:
        """Download a large object into `local` (ranged and parallel where possible)."""
        self.fs.get_file(key, str(local))
