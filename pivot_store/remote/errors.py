"""What went wrong on a remote, and whether trying again can help.

Every backend error is sorted here into transient (retry), missing (a fact:
FileNotFoundError) and permanent (RemoteError: stop, naming the remote and the
fix). The retry policy is written once, as a coroutine (`aretrying`); sync
callers (`retrying`) drive that same coroutine by hand, since with a sync
call and a sync sleep nothing in it ever suspends.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from pivot_store.errors import PivotError, RemoteError

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
    # 409: another conditional write of the same key is in flight (AWS: retry it).
    # s3fs raises it as OSError(EIO) with the ClientError as cause; `error_code`
    # walks the chain. The retry's If-None-Match then sees the winner's object
    # (412 -> FileExistsError: "already present") or creates it.
    "ConditionalRequestConflict",
}  # fmt: skip


class Transient(Exception):
    """An error worth retrying (5xx, throttling, resets, timeouts)."""


class Named(Protocol):
    """What an error message says about a remote (any `Remote`)."""

    name: str
    url: str


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


def classify(exc: BaseException, remote: Named, what: str = "") -> BaseException:
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


def backoff(attempt: int) -> float:
    """Seconds to wait before try `attempt + 2`: jittered, exponential, at most ~7.5."""
    return min(BACKOFF * 2**attempt, 5.0) * random.uniform(0.5, 1.5)


async def _retry(
    remote: Named,
    call: Callable[[], Awaitable[T]],
    what: str,
    attempts: int,
    sleep: Callable[[float], Awaitable[None]],
) -> T:
    """The retry loop, the only one: classify each failure, wait, try again."""
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as e:
            err = classify(e, remote, what)
            if isinstance(err, Transient) and attempt + 1 < attempts:
                await sleep(backoff(attempt))
                continue
            if err is e:
                raise
            raise err from e
    raise AssertionError("unreachable")


async def aretrying(
    remote: Named, fn: Callable[[], Awaitable[T]], what: str, attempts: int = RETRIES
) -> T:
    """Await `fn()`, retrying transient failures with jittered exponential backoff.

    Permanent errors (RemoteError) and plain absence (FileNotFoundError) are
    raised at once; a transient error that outlives every attempt becomes a
    Transient naming the last cause.
    """
    return await _retry(remote, fn, what, attempts, asyncio.sleep)


def retrying(remote: Named, fn: Callable[[], T], what: str, attempts: int = RETRIES) -> T:
    """`aretrying` for a sync `fn`: the same loop, sleeping with `time.sleep`.

    The loop's coroutine awaits only `call` and `sleep`, both sync here, so one
    `send` runs it to the end (StopIteration carries the result) without an
    event loop: this works from any thread, inside a running loop or not.
    """

    async def call() -> T:
        return fn()

    async def sleep(seconds: float) -> None:
        time.sleep(seconds)

    coro = _retry(remote, call, what, attempts, sleep)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the sync retry loop suspended")
