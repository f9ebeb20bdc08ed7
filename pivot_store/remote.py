"""A remote: an fsspec filesystem plus the key layout shared with the local cache.

```
<remote>/files/ab/cdef...                          objects (same as the cache)
<remote>/runs/<name>/<fingerprint>/<entry>.json    run-cache entries
```

Three backends share one small interface, so transfer code never asks what it
is talking to: S3 (direct `head_object` / `list_objects_v2` / conditional PUT
through s3fs, one request each), a local folder (temp file + `os.link`, the
cache's own publishing rule) and any other fsspec filesystem (memory, gcs, az).
Every write creates, never replaces (contract line 2). Errors are sorted here
into transient (retry), missing (a fact), and permanent (RemoteError: stop,
naming the remote and the fix).

Each backend has a sync face and an async one (`aget_bytes`, `aput_bytes`,
...); `Remote.run` drives a coroutine from sync code. S3 runs natively on
s3fs's event loop; the others run their sync methods on worker threads.
`KnownIndex` remembers what this cache confirmed on a remote, so a no-op push
needs no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pivot_store import atomic, keys
from pivot_store import oid as oids
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import CorruptObject, PivotError, RemoteError

#: Below this many objects one HEAD each beats listing their prefixes; above
#: it, one LIST per touched prefix (bench/remote.py --probe measures it).
HEAD_MAX = 16
#: Part and range size: objects of two parts or more go multipart / in ranged GETs.
#: (Measured against moto, 256 MiB: 16 MiB x 8 in flight GETs in 2.7 s, 8 MiB x 16
#: or x 8 in 4.9 s; puts are the same either way.)
MULTIPART_CHUNK = 16 * 2**20
#: Parts or ranged GETs in flight for one large object (on top of `jobs` objects).
RANGE_JOBS = 8
#: Socket timeouts for S3 (seconds): a stalled connection becomes a retry, not a hang.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30
#: Attempts per operation on transient errors, on top of botocore's own retries.
RETRIES = 6
BACKOFF = 0.1
T = TypeVar("T")

_PERMANENT_CODES = {
    "NoSuchBucket": "the bucket does not exist; create it or fix the remote URL",
    "AccessDenied": "access denied; check the credentials' permissions on this bucket",
    "AllAccessDisabled": "access to the bucket is disabled",
    "InvalidAccessKeyId": "the access key is not valid; check AWS_ACCESS_KEY_ID or the profile",
    "SignatureDoesNotMatch": "the secret key is wrong; check AWS_SECRET_ACCESS_KEY or the profile",
    "ExpiredToken": "the session token has expired; refresh your credentials",
    "InvalidToken": "the session token is not valid; refresh your credentials",
    "InvalidBucketName": "the bucket name is not valid; fix the remote URL",
    "PermanentRedirect": "the bucket is in another region; set `region` on the remote",
    "AuthorizationHeaderMalformed": "wrong region for this bucket; set `region` on the remote",
    "NoCredentialsError": "no credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
    "or a `profile` on the remote",
}
_TRANSIENT_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling",
    "ThrottlingException", "RequestTimeTooSkewed", "OperationAborted", "RequestLimitExceeded",
    "500", "502", "503", "504",
}  # fmt: skip


class Transient(Exception):
    """An error worth retrying (5xx, throttling, resets, timeouts)."""


def error_code(exc: BaseException) -> tuple[str | None, int | None]:
    """The S3 error code and HTTP status behind an exception, if there is one."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        resp = getattr(cur, "response", None)
        if isinstance(resp, dict) and "Error" in resp:
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return resp["Error"].get("Code"), status
        if type(cur).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            return "NoCredentialsError", None
        cur = cur.__cause__ or cur.__context__
    return None, None


def classify(exc: BaseException, remote: Remote, what: str = "") -> BaseException:
    """Map a backend exception to RemoteError (permanent), Transient, or FileNotFoundError."""
    if isinstance(exc, PivotError | Transient):
        return exc
    code, status = error_code(exc)
    where = f" ({what})" if what else ""
    if code in _PERMANENT_CODES:
        return RemoteError(
            f"remote {remote.name!r} ({remote.url}): {code}{where}", _PERMANENT_CODES[code]
        )
    if code in _TRANSIENT_CODES or (status is not None and status >= 500):
        return Transient(f"{code or status}{where}")
    if code in ("NoSuchKey", "404") or (code is None and isinstance(exc, FileNotFoundError)):
        return FileNotFoundError(errno.ENOENT, f"not on remote {remote.name!r}", what)
    if isinstance(exc, PermissionError) or code == "403":
        return RemoteError(
            f"remote {remote.name!r} ({remote.url}): access denied{where}",
            "check the credentials and their permissions on this bucket or folder",
        )
    if code is None and isinstance(exc, OSError | TimeoutError | ConnectionError):
        return Transient(f"{type(exc).__name__}: {exc}{where}")
    if code is None and type(exc).__module__.split(".")[0] in ("aiohttp", "botocore", "urllib3"):
        return Transient(f"{type(exc).__name__}: {exc}{where}")
    return RemoteError(
        f"remote {remote.name!r} ({remote.url}): {code or type(exc).__name__}: {exc}{where}",
        "check the remote's URL and options in .pivot/config.yaml",
    )


def retrying(remote: Remote, fn: Callable[[], T], what: str, attempts: int = RETRIES) -> T:
    """Run `fn`, retrying transient failures with jittered exponential backoff.

    Permanent errors (RemoteError) and plain absence (FileNotFoundError) are
    raised at once; a transient error that outlives every attempt becomes a
    Transient naming the last cause.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:
            err = classify(e, remote, what)
            if isinstance(err, Transient) and attempt + 1 < attempts:
                time.sleep(min(BACKOFF * 2**attempt, 5.0) * random.uniform(0.5, 1.5))
                continue
            if err is e:
                raise
            raise err from e
    raise AssertionError("unreachable")


async def aretrying(
    remote: Remote, fn: Callable[[], Awaitable[T]], what: str, attempts: int = RETRIES
) -> T:
    """`retrying` for coroutines: the same classification, asyncio.sleep between tries."""
    for attempt in range(attempts):
        try:
            return await fn()
        except Exception as e:
            err = classify(e, remote, what)
            if isinstance(err, Transient) and attempt + 1 < attempts:
                await asyncio.sleep(min(BACKOFF * 2**attempt, 5.0) * random.uniform(0.5, 1.5))
                continue
            if err is e:
                raise
            raise err from e
    raise AssertionError("unreachable")


def _run_new_loop(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], jobs: int) -> T:
    """Run `fn(*args)` on a fresh event loop whose thread pool has `jobs` workers.

    From inside a running loop (a notebook, an async caller) the fresh loop
    gets its own thread, since one thread cannot run two loops.
    """

    async def main() -> T:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max(1, jobs), "pivot-remote")
        )
        return await fn(*args)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = asyncio.run(main())
        except BaseException as e:
            box["err"] = e

    t = threading.Thread(target=target, name="pivot-remote-loop")
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]
    return box["out"]


async def amap(jobs: int, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any]) -> list[Any]:
    """`[await fn(i) for i in items]`, `jobs` at a time, results in order.

    `jobs` workers pull from one iterator, so no task exists per item. The
    first RemoteError (permanent: no bucket, denied) stops the workers from
    taking more items and is raised once those in flight have finished.
    """
    items = list(items)
    out: list[Any] = [None] * len(items)
    it = iter(enumerate(items))
    stop: list[BaseException] = []

    async def worker() -> None:
        for i, item in it:
            if stop:
                return
            try:
                out[i] = await fn(item)
            except RemoteError as e:
                stop.append(e)
                return

    await asyncio.gather(*(worker() for _ in range(min(max(1, jobs), len(items)))))
    if stop:
        raise stop[0]
    return out


class Remote:
    """The generic backend: any fsspec filesystem (memory://, gs://, az://, ...)."""

    kind = "fsspec"

    def __init__(
        self, name: str, url: str, fs: Any, root: str, make_fs: Callable[[], Any] | None = None
    ) -> None:
        self.name = name
        self.url = url
        self._fs = fs
        self._make_fs = make_fs
        self.root = root.rstrip("/")

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
        """Fail fast (RemoteError) when the remote cannot be used at all."""
        if create:
            with contextlib.suppress(FileExistsError):
                self.fs.makedirs(self.root, exist_ok=True)

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
        return _run_new_loop(fn, args, jobs)

    # --- the async interface (default: the sync methods on worker threads) ---
    async def aexists(self, key: str) -> bool:
        return await asyncio.to_thread(self.exists, key)

    async def alist_names(self, key: str) -> list[str]:
        return await asyncio.to_thread(self.list_names, key)

    async def alist_dirs(self, key: str) -> list[str]:
        return await asyncio.to_thread(self.list_dirs, key)

    async def aput_file(self, local: Path, key: str) -> bool:
        return await asyncio.to_thread(self.put_file, local, key)

    async def aput_bytes(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self.put_bytes, key, data)

    async def aget_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.get_bytes, key)

    async def aget_file(self, key: str, local: Path, size: int | None = None) -> None:
        await asyncio.to_thread(self.get_file, key, local)

    # --- writing: create, never replace --------------------------------------
    def put_file(self, local: Path, key: str) -> bool:
        """Upload `local` to `key` unless `key` exists; True if this call wrote it."""
        if self.fs.exists(key):
            return False
        self.fs.put_file(str(local), key)
        return True

    def put_bytes(self, key: str, data: bytes) -> bool:
        if self.fs.exists(key):
            return False
        self.fs.pipe_file(key, data)
        return True

    # --- reading ------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(key)

    def get_file(self, key: str, local: Path) -> None:
        """Download a large object into `local` (ranged and parallel where possible)."""
        self.fs.get_file(key, str(local))


class S3Remote(Remote):
    """S3 through s3fs's coroutines, one request per operation, conditional creates.

    Everything runs on s3fs's own event loop (one thread, one connection
    pool): transfer code hands it whole batches through `run`, so there is
    no thread hop per object.
    """

    kind = "s3"

    def _bk(self, key: str) -> tuple[str, str]:
        bucket, _, path = key.partition("/")
        return bucket, path

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, jobs: int = 20) -> T:
        from fsspec.asyn import sync

        return sync(self.fs.loop, fn, *args)

    def check(self, *, create: bool = False, must_exist: bool = True) -> None:
        bucket, _ = self._bk(self.root)
        try:
            retrying(self, lambda: self.fs.call_s3("head_bucket", Bucket=bucket), bucket)
        except Exception as e:
            code, status = error_code(e)
            if code in ("404", "NoSuchBucket") or status == 404:
                raise RemoteError(
                    f"remote {self.name!r} ({self.url}): bucket {bucket!r} does not exist",
                    "create the bucket or fix the URL with `pivot remote add`",
                ) from None
            if code in ("403", "AccessDenied") or status == 403:
                raise RemoteError(
                    f"remote {self.name!r} ({self.url}): access to bucket {bucket!r} denied",
                    "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "`profile`) and their permissions",
                ) from None
            if isinstance(e, RemoteError):
                raise
            err = classify(e, self, f"bucket {bucket}")
            raise err from None

    # --- sync face (one request each) ------------------------------------------
    def exists(self, key: str) -> bool:
        return self.run(self.aexists, key)

    def list_names(self, key: str) -> list[str]:
        return self.run(self.alist_names, key)

    def list_dirs(self, key: str) -> list[str]:
        return self.run(self.alist_dirs, key)

    def put_file(self, local: Path, key: str) -> bool:
        return self.run(self.aput_file, local, key)

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self.run(self.aput_bytes, key, data)

    def get_bytes(self, key: str) -> bytes:
        return self.run(self.aget_bytes, key)

    def get_file(self, key: str, local: Path) -> None:
        self.run(self.aget_file, key, local)

    # --- async face ----------------------------------------------------------
    async def aexists(self, key: str) -> bool:
        bucket, path = self._bk(key)
        try:
            await self.fs._call_s3("head_object", Bucket=bucket, Key=path)
            return True
        except FileNotFoundError:
            return False

    async def _alist(self, key: str, delimiter: bool) -> list[str]:
        bucket, path = self._bk(key.rstrip("/") + "/")
        names: list[str] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": bucket, "Prefix": path}
            if delimiter:
                kw["Delimiter"] = "/"
            if token:
                kw["ContinuationToken"] = token
            out = await self.fs._call_s3("list_objects_v2", **kw)
            if delimiter:
                names += [
                    p["Prefix"][len(path) :].rstrip("/") for p in out.get("CommonPrefixes", [])
                ]
            else:
                names += [o["Key"][len(path) :] for o in out.get("Contents", [])]
            token = out.get("NextContinuationToken")
            if not out.get("IsTruncated") or not token:
                return names

    async def alist_names(self, key: str) -> list[str]:
        return [n for n in await self._alist(key, False) if "/" not in n]

    async def alist_dirs(self, key: str) -> list[str]:
        return await self._alist(key, True)

    async def aput_file(self, local: Path, key: str) -> bool:
        try:
            await self.fs._put_file(
                str(local), key, mode="create", chunksize=MULTIPART_CHUNK,
                max_concurrency=RANGE_JOBS, ContentType="application/octet-stream",
            )  # fmt: skip
        except FileExistsError:
            return False  # If-None-Match refused it: already there (maybe our retried PUT)
        return True

    async def aput_bytes(self, key: str, data: bytes) -> bool:
        bucket, path = self._bk(key)
        try:
            await self.fs._call_s3(
                "put_object", Bucket=bucket, Key=path, Body=data, IfNoneMatch="*"
            )
        except FileExistsError:
            return False
        return True

    async def _aget(self, bucket: str, path: str, **kw: Any) -> tuple[bytes, dict[str, Any]]:
        resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=path, **kw)
        body = resp["Body"]
        try:
            return await body.read(), resp
        finally:
            body.close()

    async def aget_bytes(self, key: str) -> bytes:
        """One GET (s3fs's `cat_file` adds a HEAD to decide on ranged reads)."""
        bucket, path = self._bk(key)
        return (await self._aget(bucket, path))[0]

    async def aget_file(self, key: str, local: Path, size: int | None = None) -> None:
        """Ranged GETs, `RANGE_JOBS` at a time, streamed in place into `local`.

        With `size` known the object is cut into at most `RANGE_JOBS` ranges
        (at least MULTIPART_CHUNK each) fetched at once; each response must
        report that total size (else CorruptObject) and deliver its whole
        range (else a transient error, and that range is fetched again).
        Memory stays at one 1 MiB buffer per range, whatever the range size.
        """
        bucket, path = self._bk(key)
        chunk = MULTIPART_CHUNK
        if size:
            per = -(-size // RANGE_JOBS)
            chunk = max(chunk, -(-per // 2**20) * 2**20)
        fd = os.open(local, os.O_WRONLY | os.O_CREAT, 0o600)

        def corrupt(what: str) -> CorruptObject:
            return CorruptObject(
                f"{key} on remote {self.name!r} {what}",
                "the remote copy is corrupt or was tampered with; nothing was kept",
            )

        async def get_range(start: int) -> int:
            rng = f"bytes={start}-{start + chunk - 1}"
            try:
                resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=path, Range=rng)
            except Exception as e:
                if error_code(e)[0] == "InvalidRange":
                    raise corrupt("is shorter than expected") from None
                raise
            body = resp["Body"]
            off = start
            try:
                while data := await body.read(2**20):
                    os.pwrite(fd, data, off)
                    off += len(data)
            finally:
                body.close()
            total_s = str(resp.get("ContentRange", "")).rpartition("/")[2]
            total = int(total_s) if total_s.isdigit() else off
            if size is not None and total != size:
                raise corrupt(f"is {total} bytes, expected {size}")
            if off - start != min(chunk, total - start):
                raise OSError(errno.EIO, f"short read of {key} [{rng}]")
            return total

        async def part(start: int) -> int:
            return await aretrying(self, lambda: get_range(start), f"{key} @{start}")

        try:
            if size is None:
                size = await part(0)
                await amap(RANGE_JOBS, part, range(chunk, size, chunk))
            else:
                await amap(RANGE_JOBS, part, range(0, max(size, 1), chunk))
            os.ftruncate(fd, size)
        finally:
            os.close(fd)


class LocalRemote(Remote):
    """A folder (file:// or a path): publishes like the cache, by temp + os.link."""

    kind = "local"

    def _p(self, key: str) -> Path:
        return Path(key)

    def check(self, *, create: bool = False, must_exist: bool = True) -> None:
        root = Path(self.root)
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RemoteError(
                    f"remote {self.name!r} ({self.url}): cannot create {root}: {e.strerror}",
                    "fix the path or its permissions",
                ) from None
        elif must_exist and not root.is_dir():
            raise RemoteError(
                f"remote {self.name!r} ({self.url}): {root} does not exist",
                "fix the URL with `pivot remote add`, or push to it first",
            )

    def exists(self, key: str) -> bool:
        return os.path.exists(key)

    def list_names(self, key: str) -> list[str]:
        try:
            return [n for n in os.listdir(key) if not atomic.is_temp(n)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _publish(self, key: str, write: Any) -> bool:
        final = self._p(key)
        if final.exists():
            return False
        with atomic.temp_file(final.parent) as (tmp, f):
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
        return atomic.publish_new(tmp, final) if tmp.exists() else False

    def put_file(self, local: Path, key: str) -> bool:
        def write(f: Any) -> None:
            with open(local, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        return self._publish(key, write)

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self._publish(key, lambda f: f.write(data))

    def get_bytes(self, key: str) -> bytes:
        return self._p(key).read_bytes()

    def get_file(self, key: str, local: Path) -> None:
        shutil.copyfile(key, local)


def _s3_options(opts: dict[str, Any], jobs: int) -> dict[str, Any]:
    """Config-file names -> s3fs kwargs (`region`, `profile`, AWS_ENDPOINT_URL)."""
    opts = dict(opts)
    client_kwargs = dict(opts.pop("client_kwargs", None) or {})
    region = opts.pop("region", None) or opts.pop("region_name", None)
    if region:
        client_kwargs.setdefault("region_name", region)
    endpoint = opts.get("endpoint_url") or client_kwargs.get("endpoint_url")
    if not endpoint:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts["endpoint_url"] = endpoint
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    config_kwargs = dict(opts.pop("config_kwargs", None) or {})
    # One pooled connection per job, plus the parts of a multipart upload.
    config_kwargs.setdefault("max_pool_connections", max(jobs, 10) + RANGE_JOBS + 10)
    # A stalled socket times out and is retried instead of hanging the transfer.
    for name, default in (("connect_timeout", CONNECT_TIMEOUT), ("read_timeout", READ_TIMEOUT)):
        value = opts.pop(name, None)
        config_kwargs.setdefault(name, float(value) if value is not None else default)
    opts["config_kwargs"] = config_kwargs
    opts.setdefault("skip_instance_cache", True)
    return opts


def open_remote(
    config: Config | None = None,
    name: str | None = None,
    *,
    remote: RemoteConfig | None = None,
    jobs: int = 20,
) -> Remote:
    """The remote called `name` (or the default) in `config`, ready to use.

    An unknown name is a ConfigError naming the configured ones; an unknown
    protocol or a missing backend package is a RemoteError saying what to install.
    """
    if remote is None:
        if config is None:
            raise ValueError("open_remote needs a config or a remote")
        name, remote = config.remote(name)
    name = name or "remote"
    return from_url(remote.url, remote.storage_options(), name=name, jobs=jobs)


def from_url(url: str, options: dict[str, Any] | None = None, *, name: str = "remote",
             jobs: int = 20) -> Remote:  # fmt: skip
    options = dict(options or {})
    protocol, _, rest = url.partition("://") if "://" in url else ("file", "", url)
    if protocol in ("file", "local"):
        return LocalRemote(name, url, None, os.path.abspath(rest or "/"))

    def make_fs() -> Any:
        import fsspec

        try:
            cls = fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as e:
            raise RemoteError(
                f"remote {name!r} ({url}): no filesystem for {protocol}:// ({e})",
                f"install the fsspec backend for {protocol} (e.g. `pip install s3fs`)",
            ) from None
        try:
            return cls(**options)
        except TypeError as e:
            raise RemoteError(
                f"remote {name!r} ({url}): bad storage option: {e}",
                "fix the remote's options in .pivot/config.yaml",
            ) from None

    if protocol in ("s3", "s3a"):
        # Made on first use: a push that the known-on-remote index settles
        # never imports s3fs at all.
        options = _s3_options(options, jobs)
        return S3Remote(name, url, None, rest.rstrip("/"), make_fs)
    fs = make_fs()
    return Remote(name, url, fs, type(fs)._strip_protocol(url))


class KnownIndex:
    """Objects and run-cache entries this cache has seen on one remote.

    A plain text file per remote URL under `.pivot/cache/remotes/`, one key a
    line. It can only be wrong in one direction that matters: something
    deleted from the remote behind pivot's back (push never deletes). So it
    only ever lets a push skip work, `pivot push --verify-remote` ignores it
    and rewrites it from what the remote really holds, and it is written
    after the objects and entries it names are confirmed. Lost updates (two
    pushes at once) only cost a later check.
    """

    def __init__(self, cache_root: Path, url: str) -> None:
        from pivot_store.hashing import hash_bytes

        self.path = Path(cache_root).parent / "remotes" / f"{hash_bytes(url.encode())}.known"

    def load(self) -> set[str]:
        try:
            return set(self.path.read_text().split())
        except (OSError, UnicodeDecodeError):
            return set()

    def add(self, keys: Iterable[str], *, replace: bool = False) -> None:
        new = set(keys)
        known = set() if replace else self.load()
        if not replace and new <= known:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = "".join(f"{k}\n" for k in sorted(known | new)).encode()
            atomic.write_replace(self.path, data, fsync=False)
