"""`Wire`: S3 object requests (GET, HEAD, PUT, a part, a range) without botocore's pipeline.

A transfer of small objects is one request each, and botocore spends about
1.3 ms of CPU on each (event hooks, endpoint rules, serializing, signing,
parsing the response's headers into a dict with a date parser), more than the
request itself costs on a fast link; `bench/remote.py` measured a 4 KiB GET at
1.5 ms through aiobotocore and 0.5 ms signed and sent straight over aiohttp.
So the requests a transfer makes per object go straight over the aiobotocore
client's own aiohttp session (one connection pool, its TLS and timeout
settings), signed as botocore's `S3SigV4Auth` signs (`Signer`: the same
headers byte for byte, 0.01 ms a request instead of 0.07; against a keep-alive
server a 4 KiB GET costs the wire 0.14 ms of CPU). A large object's parts
(`put_part`: the part's CRC32, and over plain http its SHA-256, computed off
the loop by the caller, the body sent in slices, not copied whole twice) and its ranged GETs
(`get_range`, streamed to the caller's writer) go the same way: 512 MiB to
moto cost the client 0.74-0.76 s of CPU over the wire against 0.92-0.98 s
through botocore. Everything else (listing, creating and completing a
multipart upload, deletes, the bucket check) stays on s3fs. The wire sends
exactly what botocore would need to: it learns the
bucket's URL and signing region from botocore itself (a presigned URL: same
endpoint rules, addressing style and region), and a remote where s3fs would
add anything to a request (extra kwargs such as server-side encryption,
requester pays, anonymous access, a proxy, another signature version) never
uses it (`Wire.open` returns None). A redirect (wrong region) raises
`WireFallback`, so the caller redoes that request through botocore, which
follows it.

Errors come out the way botocore's do, as far as `remote.errors.classify`
looks: a 404 is FileNotFoundError (a missing bucket says NoSuchBucket and is
permanent), a refused conditional PUT (412) is FileExistsError, and every
other status raises `WireError` carrying a botocore-shaped `response` (code,
message, HTTP status), so transient and permanent errors sort as before.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from yarl import URL

#: SHA-256 of an empty body (GET, HEAD).
#: At most this much of an error response's body is read.
ERROR_BODY_MAX = 64 * 1024
#: What a request signs in place of its payload's SHA-256 when that is not signed.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: A request body larger than this is sent in slices of it (`_slices`).
SEND_CHUNK = 1 << 20
_REDIRECT_CODES = {
    "PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
}  # fmt: skip
_SCOPE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request"
)
#: The key whose HEAD request botocore builds, signs and never sends (`_probe`).
PROBE_KEY = ".pivot-wire-probe"
_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,1000})</Message>")


class WireError(Exception):
    """A non-2xx S3 answer, shaped like botocore's ClientError for `classify`."""

    def __init__(self, status: int, code: str | None, message: str, what: str) -> None:
        super().__init__(f"{code or status}: {message} ({what})")
        self.response = {
            "Error": {"Code": code or str(status), "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


class WireFallback(Exception):
    """The bucket answered with a redirect: redo the request through botocore."""


class Signer:
    """SigV4 header auth for S3 with a signed payload hash, as botocore's `S3SigV4Auth` signs.

    botocore's signer costs about 0.07 ms a request, most of it in its generic
    request object (email-style headers, URL re-parsing) rather than in the
    hashing; the wire's requests have one shape (a path, no query, a few
    headers), so this builds the same canonical request directly with
    `hashlib`/`hmac` and keeps the day's signing key. Nothing of the crypto
    is new: the inputs are exactly botocore's, and
    `test_remote_wire.test_signature_is_botocores` checks that the
    Authorization header is the one `S3SigV4Auth` gives, byte for byte.
    """

    def __init__(self, region: str, service: str = "s3") -> None:
        self.region = region
        self.service = service
        self._key: tuple[str, str, bytes] | None = None  # (secret, date, signing key)

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == date:
            return cached[2]
        key = ("AWS4" + secret).encode()
        for part in (date, self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (secret, date, key)
        return key

    def headers(
        self, method: str, origin: str, uri: str, data: bytes | None,
        creds: Any, extra: dict[str, str], query: str = "", payload_sha256: str | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """The headers of `method origin+uri?query` with body `data`, `Authorization`
        included (`extra` signed too; the payload's SHA-256 is signed, as botocore
        does). `query` is already encoded (`query_string`); `payload_sha256` is the
        body's hex SHA-256 when the caller hashed it already (off the event loop)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = dict(extra)
        out["X-Amz-Date"] = stamp
        if creds.token:
            out["X-Amz-Security-Token"] = creds.token
        out["X-Amz-Content-SHA256"] = payload_sha256 or hashlib.sha256(data or b"").hexdigest()
        signed = {k.lower(): " ".join(v.split()) for k, v in out.items()}
        signed["host"] = _host(origin)
        names = sorted(signed)
        canonical = "\n".join((
            method, uri, query, "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names), out["X-Amz-Content-SHA256"],
        ))  # fmt: skip
        scope = f"{stamp[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join((
            "AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()
        ))  # fmt: skip
        key = self._signing_key(creds.secret_key, stamp[:8])
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        out["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={sig}"
        )
        return out


def query_string(params: dict[str, str]) -> str:
    """`params` as SigV4's canonical query string (sorted, RFC 3986 encoded), which is
    also the query the request is sent with, so the two can never differ."""
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )


@functools.lru_cache(maxsize=64)
def _host(origin: str) -> str:
    """The Host botocore signs for `origin`: lowercased, IPv6 in brackets, no default port."""
    parts = urlsplit(origin)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class _Probed(Exception):
    """Raised from botocore's `before-send` hook: the probe request, built and signed."""

    def __init__(self, url: str, auth: str) -> None:
        super().__init__(url)
        self.url, self.auth = url, auth


async def _probe(client: Any, bucket: str) -> tuple[str, str]:
    """(URL, Authorization header) botocore gives a HEAD of `PROBE_KEY` in `bucket`.

    The request goes through botocore's whole pipeline (endpoint rules,
    addressing style, region, signer) and is stopped just before it would be
    sent, so the wire addresses and signs exactly as botocore does; nothing
    reaches the bucket. Other requests on the client pass the hook untouched.
    """

    def stop(request: Any, **_: Any) -> None:
        if request.url.split("?")[0].endswith("/" + PROBE_KEY):
            auth = request.headers.get("Authorization", b"")
            auth = auth.decode() if isinstance(auth, bytes) else str(auth)
            raise _Probed(request.url.split("?")[0], auth)

    events = client.meta.events
    events.register_first("before-send.s3.HeadObject", stop)
    try:
        await client.head_object(Bucket=bucket, Key=PROBE_KEY)
    except _Probed as p:
        return p.url, p.auth
    finally:
        events.unregister("before-send.s3.HeadObject", stop)
    return "", ""


class Wire:
    """GET / HEAD / conditional PUT of keys in one bucket, over the client's aiohttp session."""

    def __init__(
        self, base: str, signer: Signer, credentials: Any, http: Any, client_of: Any = None,
        sign_parts: bool | None = None,
    ) -> None:  # fmt: skip
        parts = urlsplit(base)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        #: Whether a part's SHA-256 is signed, as botocore decides for an UploadPart
        #: (`S3SigV4Auth._should_sha256_sign_payload`): the client's explicit
        #: `payload_signing_enabled`, else only over plain http. Over https the part
        #: carries its CRC32 in a header and botocore signs UNSIGNED-PAYLOAD: TLS and
        #: the server's CRC32 check protect the bytes, and no SHA-256 is computed.
        self.sign_parts = parts.scheme != "https" if sign_parts is None else sign_parts
        self._host = parts.netloc
        self._prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
        self._signer = signer
        self._credentials = credentials
        self._http = http  # aiobotocore's AIOHTTPSession: its aiohttp session is asked per call
        #: The s3fs client this wire was made from (a new one means: open the wire again).
        self.client_of = client_of

    @classmethod
    async def open(cls, fs: Any, bucket: str) -> Wire | None:
        """The wire for `bucket` of s3fs filesystem `fs`, or None when it must not be used."""
        if fs.anon or fs.s3_additional_kwargs or fs.req_kw:
            return None
        client = owner = await fs.set_session()
        if getattr(fs, "cache_regions", False):
            client = await fs._s3creator.get_bucket_client(bucket)
        config = client.meta.config
        if config.signature_version not in (None, "s3v4") or config.proxies:
            return None
        if getattr(config, "client_cert", None):
            return None
        signer_obj = getattr(client, "_request_signer", None)
        credentials = getattr(signer_obj, "_credentials", None)
        http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        if credentials is None or http is None or not hasattr(http, "_get_session"):
            return None
        url, auth = await _probe(client, bucket)
        m = _SCOPE.search(auth)
        if not url.endswith("/" + PROBE_KEY) or m is None or m.group(2) != "s3":
            return None
        base = url[: -len(PROBE_KEY)]
        proxy_config = getattr(http, "_proxy_config", None)
        if proxy_config is None or proxy_config.proxy_url_for(base) is not None:
            return None
        explicit = (getattr(config, "s3", None) or {}).get("payload_signing_enabled")
        return cls(base, Signer(m.group(1)), credentials, http, owner, explicit)

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, path: str, what: str, data: bytes | None = None,
        extra: dict[str, str] | None = None, query: str = "", payload_sha256: str | None = None,
    ) -> AsyncIterator[Any]:  # fmt: skip
        """The 2xx response to one signed request (read it inside the block); any other
        answer raised as botocore's would be (see the module's docstring)."""
        uri = self._prefix + quote(path, safe="/~")
        creds = await self._credentials.get_frozen_credentials()
        headers = self._signer.headers(
            method, self._origin, uri, data, creds, dict(extra or {}), query, payload_sha256
        )
        headers["Accept-Encoding"] = "identity"
        payload: Any = data
        if data is not None and len(data) > SEND_CHUNK:
            headers["Content-Length"] = str(len(data))
            payload = _slices(data)
        session = await self._http._get_session(None)
        url = URL(self._origin + uri + (f"?{query}" if query else ""), encoded=True)
        async with session.request(
            method, url, headers=headers, data=payload, allow_redirects=False
        ) as resp:
            status = resp.status
            if status < 300:
                yield resp
                return
            body = await resp.content.read(ERROR_BODY_MAX) if method != "HEAD" else b""
        _raise(status, body, method, what)

    async def _send(
        self, method: str, path: str, what: str, data: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:  # fmt: skip
        async with self._request(method, path, what, data, extra) as resp:
            return resp.status, (await resp.read() if method == "GET" else b"")

    async def get(self, path: str) -> bytes:
        """The whole object at `path` (one GET); FileNotFoundError when there is none."""
        return (await self._send("GET", path, path))[1]

    async def head(self, path: str) -> bool:
        """True if `path` exists (one HEAD)."""
        try:
            await self._send("HEAD", path, path)
        except FileNotFoundError:
            return False
        return True

    async def put(self, path: str, data: bytes) -> bool:
        """Create `path` unless it exists (`If-None-Match: *`); True if this call wrote it."""
        try:
            await self._send("PUT", path, path, data, {"If-None-Match": "*"})
        except FileExistsError:
            return False
        return True

    async def put_part(
        self, path: str, upload_id: str, number: int, data: bytes, sha256: str | None, crc32: str
    ) -> dict[str, str]:
        """Part `number` of multipart upload `upload_id`, with its CRC32 (base64, as S3
        writes it) for the server to check; the part's ETag and the CRC32 the server
        recorded, named as botocore's `upload_part` answer names them. `sha256` is the
        part's hex SHA-256, needed (and signed) when `sign_parts`; else the request
        signs UNSIGNED-PAYLOAD, as botocore's does."""
        if self.sign_parts and sha256 is None:
            raise ValueError("this wire signs a part's SHA-256: pass it")
        payload = sha256 if self.sign_parts else UNSIGNED_PAYLOAD
        query = query_string({"partNumber": str(number), "uploadId": upload_id})
        extra = {"x-amz-checksum-crc32": crc32, "x-amz-sdk-checksum-algorithm": "CRC32"}
        what = f"{path} part {number}"
        async with self._request("PUT", path, what, data, extra, query, payload) as resp:
            etag = resp.headers.get("ETag")
            if not etag:
                raise WireError(resp.status, "InternalError", "no ETag for the part", what)
            out = {"ETag": etag}
            if resp.headers.get("x-amz-checksum-crc32"):
                out["ChecksumCRC32"] = resp.headers["x-amz-checksum-crc32"]
            return out

    async def get_range(
        self, path: str, start: int, end: int, write: Callable[[bytes, int], None]
    ) -> tuple[int, str]:
        """Bytes `start`..`end` (inclusive) of `path`, each chunk handed to `write(chunk,
        offset)` as it arrives; (bytes received, the answer's Content-Range). The
        caller checks both: a server may send less, or the whole object."""
        extra = {"Range": f"bytes={start}-{end}"}
        async with self._request("GET", path, path, extra=extra) as resp:
            off = start
            async for chunk in resp.content.iter_chunked(2**20):
                write(chunk, off)
                off += len(chunk)
            return off - start, resp.headers.get("Content-Range", "")


async def _slices(data: bytes) -> AsyncIterator[memoryview]:
    """`data` in SEND_CHUNK views (no copy). Given whole, aiohttp joins a large body to
    its headers and asyncio copies what the socket did not take at once into its
    buffer: two fresh copies of every 16 MiB part. In slices, aiohttp waits for
    the transport to drain between them and only a slice's unsent tail is
    copied: 512 MiB of parts to moto cost the client 0.82-0.87 s of CPU sent
    whole, 0.74-0.76 s in slices."""
    view = memoryview(data)
    for start in range(0, len(view), SEND_CHUNK):
        yield view[start : start + SEND_CHUNK]


def _raise(status: int, body: bytes, method: str, what: str) -> None:
    """A non-2xx answer as the exception botocore's would sort into (`errors.classify`)."""
    code_m = _CODE.search(body)
    code = code_m.group(1).decode(errors="replace") if code_m else None
    if 300 <= status < 400 or code in _REDIRECT_CODES:
        raise WireFallback(f"{status} {code} ({what})")
    if status == 404 and code in (None, "NoSuchKey"):
        raise FileNotFoundError(what)
    if status == 412 and method == "PUT":
        raise FileExistsError(what)
    msg_m = _MESSAGE.search(body)
    message = msg_m.group(1).decode(errors="replace") if msg_m else ""
    raise WireError(status, code, message, what)
