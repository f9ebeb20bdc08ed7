"""A large object's upload to S3: a conditional multipart upload with a CRC32 per part.

s3fs's own `_put_file` sends parts in lockstep batches (all of a batch must
finish before the next is read) and declares no checksum algorithm at
create, so the server must build the object's checksum from the whole
object at complete (moto copies the 512 MiB object twice for it: 5.0 s of
its CPU against 3.6 s with a declared algorithm, `bench/remote.py
--decompose`). Here the upload is created with `ChecksumAlgorithm=CRC32`, as
the AWS SDK's own transfer manager does by default: botocore computes each
part's CRC32 (it does so anyway), the server checks every part against it and
keeps a composite checksum built from the parts', and the complete names each
part's CRC32 and ETag. A server that does not speak flexible checksums (some
S3-compatible stores) returns no per-part checksum, and then the complete
names ETags alone. The complete is conditional (`If-None-Match: *`): a key
that appeared meanwhile is never replaced (contract line 2) and the upload is
aborted. Parts go `RANGE_JOBS` at a time from a sliding window, each read
when it is sent and retried on its own (`aretrying`), so memory stays at
`RANGE_JOBS` parts and one slow part does not hold the others back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pivot_store.remote.errors import Named, Transient, aretrying, error_code

#: upload_part(upload id, part number, data) -> botocore's answer (its ETag, ChecksumCRC32)
UploadPart = Callable[[str, int, bytes], Awaitable[dict[str, Any]]]


async def put_multipart(
    remote: Named, fs: Any, local: Path, bucket: str, path: str, *, part_size: int, jobs: int,
    upload_part: UploadPart,
) -> bool:  # fmt: skip
    """Upload `local` to `bucket/path` in parts unless the key exists; True if this call wrote it.

    `fs` is the remote's s3fs filesystem (its `_call_s3`: botocore, with the
    remote's extra request options such as server-side encryption) for the
    create, complete and abort; each part goes through `upload_part` (the
    remote's: over its wire, else botocore).
    """
    size = os.stat(local).st_size
    what = f"{bucket}/{path}"
    common = {"Bucket": bucket, "Key": path}
    mpu = await aretrying(
        remote,
        lambda: fs._call_s3(
            "create_multipart_upload",
            **common,
            ContentType="application/octet-stream",
            ChecksumAlgorithm="CRC32",
        ),
        what,
    )
    uid = mpu["UploadId"]
    fd = os.open(local, os.O_RDONLY)
    try:

        async def part(n: int) -> dict[str, Any]:
            start = (n - 1) * part_size
            want = min(part_size, size - start)
            data = os.pread(fd, want, start)
            if len(data) != want:
                raise OSError(errno.EIO, f"{local} shrank while it was uploaded")
            out = await aretrying(
                remote,
                lambda: upload_part(uid, n, data),
                f"{what} part {n}",
            )
            done = {"PartNumber": n, "ETag": out["ETag"]}
            if out.get("ChecksumCRC32"):
                done["ChecksumCRC32"] = out["ChecksumCRC32"]
            return done

        parts = await _all_or_none(jobs, part, range(1, -(-size // part_size) + 1))
        tries = 0

        async def complete() -> None:
            nonlocal tries
            tries += 1
            try:
                await fs._call_s3(
                    "complete_multipart_upload", **common, UploadId=uid,
                    MultipartUpload={"Parts": parts}, IfNoneMatch="*",
                )  # fmt: skip
            except Exception as e:
                if tries > 1 and error_code(e)[0] == "NoSuchUpload":
                    # An earlier try completed it and its answer was lost: the key
                    # is there (present, as a refused create would say), or it is
                    # not and the whole upload must start again.
                    try:
                        await fs._call_s3("head_object", **common)
                    except FileNotFoundError:
                        raise Transient(f"upload of {what} vanished") from None
                    raise FileExistsError(what) from None
                raise

        await aretrying(remote, complete, what)
    except Exception as e:
        with contextlib.suppress(Exception):
            await fs._call_s3("abort_multipart_upload", **common, UploadId=uid)
        if isinstance(e, FileExistsError) or error_code(e)[0] == "PreconditionFailed":
            return False  # If-None-Match refused it: already there (maybe our retried complete)
        raise
    finally:
        os.close(fd)
    return True


async def _all_or_none(jobs: int, fn: Callable[[int], Awaitable[Any]], items: range) -> list[Any]:
    """`[await fn(i) for i in items]`, `jobs` at a time. On the first failure no
    further part starts and the parts already sent are awaited to their answers
    before it is raised: a cancelled request may still reach the server, so only
    waiting makes sure no part lands after the upload is aborted (an orphan part
    a real bucket keeps and bills) and none is being read when the file closes.
    A cancellation or interrupt (not an Exception) cancels them all at once."""
    it = iter(items)
    out: dict[int, Any] = {}
    stop = False

    async def worker() -> None:
        for i in it:
            if stop:
                return
            out[i] = await fn(i)

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, min(jobs, len(items))))]
    try:
        await asyncio.gather(*tasks)
    except Exception:
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [out[i] for i in items]
