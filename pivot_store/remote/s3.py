"""`S3Remote`: S3 through s3fs's coroutines, one request per operation.

Existence is one `head_object`, listing one `list_objects_v2` per page, and
every write a conditional create (`IfNoneMatch="*"`, a multipart upload's
complete too: `s3multipart`), so nothing on the bucket is ever replaced
(contract line 2). Large objects go up in parts, `RANGE_JOBS` at a time, and
come down in ranged GETs, `RANGE_GETS` at a time (`s3ranged`). The per-object
requests of a transfer (a small object's GET and conditional PUT, a HEAD, a
large object's parts and ranges) skip botocore's per-request pipeline and go
over the same client's aiohttp session, signed in `s3wire.Wire`, wherever that
sends what botocore would (see `Wire.open`); everything else is s3fs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pivot_store.errors import RemoteError
from pivot_store.remote.base import Listed, Remote
from pivot_store.remote.errors import classify, error_code, retrying
from pivot_store.remote.s3multipart import put_multipart
from pivot_store.remote.s3ranged import get_ranged
from pivot_store.remote.s3wire import Wire, WireFallback

#: Part and range size: objects of two parts or more go multipart / in ranged GETs.
#: (Measured against moto, 256 MiB: 16 MiB x 8 in flight GETs in 2.7 s, 8 MiB x 16
#: or x 8 in 4.9 s; puts are the same either way.)
MULTIPART_CHUNK = 16 * 2**20
#: Keys per DeleteObjects request (the S3 maximum).
DELETE_BATCH = 1000
#: Parts in flight for one large object's upload (on top of `jobs` objects).
RANGE_JOBS = 8
#: Ranged GETs in flight for one large object, and the ranges it is cut into (each
#: at most RANGE_MAX: a bigger object gets more, RANGE_GETS at a time). Four, not
#: eight: four streams already fill a link of a few Gbit/s on S3 (about 90 MB/s a
#: stream), as rclone's default of four multi-thread streams assumes, while a server
#: that reads the whole object for each range (moto: 512 MiB in 8 ranges cost it
#: 2.1 s of CPU, in 4 ranges 1.2 s, in one GET 0.3 s, `bench/remote.py --decompose`)
#: pays per range. A fetch runs `jobs // RANGE_JOBS` large objects at once.
RANGE_GETS = 4
RANGE_MAX = 256 * 2**20
T = TypeVar("T")


class S3Remote(Remote):
    """S3 through s3fs's coroutines, one request per operation, conditional creates.

    Everything runs on s3fs's own event loop (one thread, one connection
    pool): transfer code hands it whole batches through `run`, so there is
    no thread hop per object.
    """

    kind = "s3"
    #: False turns the wire (`s3wire.Wire`) off for every S3 remote: all requests via s3fs.
    use_wire = True

    def _bk(self, key: str) -> tuple[str, str]:
        bucket, _, path = key.partition("/")
        return bucket, path

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, jobs: int = 20) -> T:
        from fsspec.asyn import sync

        return sync(self.fs.loop, fn, *args)

    def _check(self, *, create: bool, must_exist: bool) -> bool:
        """One `head_bucket` whatever the level: a bucket that exists needs no creating."""
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
        return True

    # --- sync face (one request each) ------------------------------------------
    def exists(self, key: str) -> bool:
        return self.run(self.aexists, key)

    def list_names(self, key: str) -> list[str]:
        return self.run(self.alist_names, key)

    def list_dirs(self, key: str) -> list[str]:
        return self.run(self.alist_dirs, key)

    def put_file(self, local: Path, key: str) -> bool:
        return self.run(self.aput_file, local, key)

    def list_info(self, key: str) -> list[Listed]:
        return self.run(self.alist_info, key)

    def delete_keys(self, keys: list[str]) -> None:
        self.run(self.adelete_keys, keys)

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self.run(self.aput_bytes, key, data)

    def get_bytes(self, key: str) -> bytes:
        return self.run(self.aget_bytes, key)

    def get_file(self, key: str, local: Path) -> None:
        self.run(self.aget_file, key, local)

    # --- the wire: per-object requests without botocore's pipeline ------------
    async def _wire(self, bucket: str) -> Wire | None:
        """The bucket's `Wire`, made once (shared by the batch's concurrent requests).

        None when the wire must not be used: turned off, this remote's options
        change what s3fs sends, or the caller runs on a loop other than s3fs's
        (the wire borrows the client's aiohttp session, bound to that loop).
        """
        if not self.use_wire or asyncio.get_running_loop() is not self.fs.loop:
            return None
        wires: dict[str, Any] = self.__dict__.setdefault("_wires", {})
        made = wires.get(bucket)
        if made is not None and made.done() and not made.cancelled() and not made.exception():
            wire = made.result()  # the common case: opened already, no shield per request
            if wire is None or wire.client_of is self.fs._s3:
                return wire
        if made is None:
            made = wires[bucket] = asyncio.ensure_future(Wire.open(self.fs, bucket))
        try:
            wire = await asyncio.shield(made)
        except Exception:
            wires[bucket] = _none_future()
            return None
        if wire is not None and wire.client_of is not self.fs._s3:
            # s3fs made a new client (its session was closed): open the wire again.
            wires.pop(bucket, None)
            return await self._wire(bucket)
        return wire

    def _wire_off(self, bucket: str) -> None:
        """A redirect: this bucket's requests go through botocore from now on."""
        self.__dict__.setdefault("_wires", {})[bucket] = _none_future()

    # --- async face ----------------------------------------------------------
    async def aexists(self, key: str) -> bool:
        bucket, path = self._bk(key)
        wire = await self._wire(bucket)
        if wire is not None:
            try:
                return await wire.head(path)
            except WireFallback:
                self._wire_off(bucket)
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

    async def alist_info(self, key: str) -> list[Listed]:
        """One `list_objects_v2` per 1,000 keys; `LastModified` is the bucket's clock."""
        bucket, path = self._bk(key.rstrip("/") + "/")
        out: list[Listed] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": bucket, "Prefix": path}
            if token:
                kw["ContinuationToken"] = token
            page = await self.fs._call_s3("list_objects_v2", **kw)
            self._note_date(page)
            for o in page.get("Contents", []):
                when = o["LastModified"]
                mtime = when.timestamp() if hasattr(when, "timestamp") else float(when)
                out.append(Listed(f"{bucket}/{o['Key']}", int(o.get("Size", 0)), mtime))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return out

    def _note_date(self, response: dict[str, Any]) -> None:
        """Keep the bucket's clock (the response's `Date` header) as `server_time`."""
        from email.utils import parsedate_to_datetime

        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        try:
            self.server_time = parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError):
            self.server_time = None

    async def adelete_keys(self, keys: list[str]) -> None:
        """One `DeleteObjects` per 1,000 keys; a key that failed is an error naming it."""
        by_bucket: dict[str, list[str]] = {}
        for k in keys:
            bucket, path = self._bk(k)
            by_bucket.setdefault(bucket, []).append(path)
        for bucket, paths in by_bucket.items():
            for i in range(0, len(paths), DELETE_BATCH):
                batch = [{"Key": p} for p in paths[i : i + DELETE_BATCH]]
                out = await self.fs._call_s3(
                    "delete_objects", Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                )
                errors = out.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise RemoteError(
                        f"remote {self.name!r}: could not delete {len(errors)} key(s), "
                        f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                        "check the credentials' s3:DeleteObject permission and run gc again",
                    )

    async def alist_names(self, key: str) -> list[str]:
        return [n for n in await self._alist(key, False) if "/" not in n]

    async def alist_dirs(self, key: str) -> list[str]:
        return await self._alist(key, True)

    async def aput_file(self, local: Path, key: str) -> bool:
        """One conditional PUT, or from two parts on a multipart upload (`s3multipart`)."""
        if os.stat(local).st_size >= 2 * MULTIPART_CHUNK:
            bucket, path = self._bk(key)
            return await put_multipart(
                self, self.fs, local, bucket, path, part_size=MULTIPART_CHUNK, jobs=RANGE_JOBS,
                upload_part=lambda uid, n, data: self._upload_part(bucket, path, uid, n, data),
            )  # fmt: skip
        try:
            await self.fs._put_file(
                str(local), key, mode="create", chunksize=MULTIPART_CHUNK,
                max_concurrency=RANGE_JOBS, ContentType="application/octet-stream",
            )  # fmt: skip
        except FileExistsError:
            return False  # If-None-Match refused it: already there (maybe our retried PUT)
        return True

    async def _upload_part(
        self, bucket: str, path: str, uid: str, n: int, data: bytes
    ) -> dict[str, Any]:
        """One part, over the wire when it may be used: its SHA-256 (signed over plain
        http, `Wire.sign_parts`) and CRC32 (checked by the server) are computed in a
        thread, as both release the GIL, not on the loop that is sending the other
        parts, where botocore computes them. Through botocore otherwise."""
        wire = await self._wire(bucket)
        if wire is not None:
            sha, crc = await asyncio.to_thread(_part_digests, data, wire.sign_parts)
            try:
                return await wire.put_part(path, uid, n, data, sha, crc)
            except WireFallback:
                self._wire_off(bucket)
        return await self.fs._call_s3(
            "upload_part", Bucket=bucket, Key=path, UploadId=uid, PartNumber=n, Body=data,
            ChecksumAlgorithm="CRC32",
        )  # fmt: skip

    async def aput_bytes(self, key: str, data: bytes) -> bool:
        bucket, path = self._bk(key)
        wire = await self._wire(bucket)
        if wire is not None:
            try:
                return await wire.put(path, data)
            except WireFallback:
                self._wire_off(bucket)
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
        wire = await self._wire(bucket)
        if wire is not None:
            try:
                return await wire.get(path)
            except WireFallback:
                self._wire_off(bucket)
        return (await self._aget(bucket, path))[0]

    async def _get_range(
        self, bucket: str, path: str, start: int, end: int, write: Callable[[bytes, int], None]
    ) -> tuple[int, str]:
        """(bytes received, Content-Range) of one ranged GET streamed into `write`: over
        the wire when it may be used, else through botocore. (Measured the same client
        CPU either way for 512 MiB; the wire keeps an object's requests on one path.)"""
        wire = await self._wire(bucket)
        if wire is not None:
            try:
                return await wire.get_range(path, start, end, write)
            except WireFallback:
                self._wire_off(bucket)
        rng = f"bytes={start}-{end}"
        resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=path, Range=rng)
        body = resp["Body"]
        off = start
        try:
            while data := await body.read(2**20):
                write(data, off)
                off += len(data)
        finally:
            body.close()
        return off - start, str(resp.get("ContentRange", ""))

    async def aget_file(self, key: str, local: Path, size: int | None = None) -> None:
        """Ranged GETs, `RANGE_GETS` at a time, streamed in place into `local`
        (`s3ranged.get_ranged`: each range checked for the object's size and its length)."""
        bucket, path = self._bk(key)
        await get_ranged(
            self, key, local, size,
            lambda start, end, write: self._get_range(bucket, path, start, end, write),
            chunk=MULTIPART_CHUNK, jobs=RANGE_GETS, most=RANGE_MAX,
        )  # fmt: skip


def _part_digests(data: bytes, sha: bool) -> tuple[str | None, str]:
    """(hex SHA-256 when `sha`, base64 big-endian CRC32) of a part: what its request
    signs and declares."""
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    return (hashlib.sha256(data).hexdigest() if sha else None), crc


def _none_future() -> Any:
    """A finished future holding None: "no wire for this bucket"."""
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done
