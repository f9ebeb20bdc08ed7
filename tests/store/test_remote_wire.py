"""remote/s3wire.py: small GET/HEAD/PUT straight over aiohttp, signed as botocore signs."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pivot_store import transfer
from pivot_store.config import RemoteConfig
from pivot_store.errors import RemoteError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.objects import ObjectStore
from pivot_store.remote import S3Remote, open_remote
from pivot_store.remote.s3wire import UNSIGNED_PAYLOAD, Signer, Wire, WireError, query_string


class _Creds:
    access_key = "AKIDEXAMPLE"
    secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    token = "session-token"


@pytest.mark.parametrize(
    ("method", "origin", "token", "extra", "params"),
    [
        ("PUT", "http://127.0.0.1:9000", "session-token", {"If-None-Match": "*"}, {}),
        ("GET", "https://bucket.s3.eu-west-3.amazonaws.com", None, {}, {}),
        ("HEAD", "http://[::1]:9000", None, {}, {}),
        ("GET", "https://S3.Example.com:443", "t", {"Range": "bytes=0-9"}, {}),
        (
            "PUT", "http://127.0.0.1:9000", None,
            {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32"},
            {"uploadId": "a+b/c=d~e f", "partNumber": "12"},
        ),
    ],
)  # fmt: skip
def test_signature_is_botocores(
    method: str, origin: str, token: str | None, extra: dict[str, str], params: dict[str, str]
) -> None:
    """The wire signs the URL it sends to exactly as botocore's S3 signer signs a request
    built for that URL: same Authorization, same headers (port, host case, IPv6, token,
    empty and non-empty bodies, a multipart part's query with characters to encode)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = os.urandom(4096) if method == "PUT" else None
    uri = "/bucket/store/files/ab/cdef0123456789%20x~"
    creds = Credentials(_Creds.access_key, _Creds.secret_key, token)
    for _ in range(3):  # both sign within one second (the stamp is part of the signature)
        query = query_string(params)
        mine = Signer("eu-west-3").headers(method, origin, uri, body, creds, dict(extra), query)
        req = AWSRequest(
            method=method, url=origin + uri, data=body or b"", headers=dict(extra), params=params
        )
        S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(req)
        if mine["X-Amz-Date"] == req.headers["X-Amz-Date"]:
            break
    assert mine == dict(req.headers.items())
    assert mine["X-Amz-Content-SHA256"] == hashlib.sha256(body or b"").hexdigest()
    assert mine.get("X-Amz-Security-Token") == token


@pytest.mark.parametrize(
    ("origin", "signs"),
    [("https://b.s3.eu-west-3.amazonaws.com", False), ("http://[::1]:9000", True)],
)
def test_a_part_is_signed_as_botocore_signs_it(origin: str, signs: bool) -> None:
    """A multipart part (CRC32 in a header, a streaming body): over https botocore signs
    UNSIGNED-PAYLOAD (TLS and the server's CRC32 check protect the bytes), over http the
    part's SHA-256; the wire decides the same (`sign_parts`) and its headers are
    botocore's byte for byte. An explicit `payload_signing_enabled` wins."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    wire = Wire(origin + "/bucket/", Signer("eu-west-3"), None, None)
    assert wire.sign_parts is signs
    assert Wire(origin + "/", Signer("r"), None, None, sign_parts=not signs).sign_parts is not signs
    body = os.urandom(4096)
    uri = "/bucket/store/files/ab/cdef0123456789"
    extra = {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32"}
    params = {"partNumber": "3", "uploadId": "a+b/c="}
    payload = hashlib.sha256(body).hexdigest() if wire.sign_parts else UNSIGNED_PAYLOAD
    creds = Credentials(_Creds.access_key, _Creds.secret_key, None)
    for _ in range(3):  # both sign within one second (the stamp is part of the signature)
        mine = Signer("eu-west-3").headers(
            "PUT", origin, uri, body, creds, dict(extra), query_string(params), payload
        )
        req = AWSRequest(
            method="PUT", url=origin + uri, data=body, headers=dict(extra), params=params
        )
        req.context.update(
            has_streaming_input=True,
            checksum={"request_algorithm": {"in": "header", "name": "x-amz-checksum-crc32"}},
        )
        S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(req)
        if mine["X-Amz-Date"] == req.headers["X-Amz-Date"]:
            break
    assert mine == dict(req.headers.items())
    assert (mine["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD") is not signs


def _locks(objects: ObjectStore, n: int) -> list[Lock]:
    locks = []
    for i in range(n):
        added = objects.add_bytes(os.urandom(100) + bytes([i]))
        parts = FingerprintParts(code_version=str(i))
        locks.append(
            Lock(name=f"a{i}", fingerprint=parts.digest(f"a{i}"), parts=parts,
                 outputs=[OutputRecord(hash=added.oid, size=added.size)])
        )  # fmt: skip
    return locks


def _botocore_calls(remote: S3Remote) -> Counter[str]:
    """Operations botocore builds on the remote's client (its own event hook, no patching)."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    async def hook() -> None:
        client = await remote.fs.set_session()
        client.meta.events.register("before-call.s3", count)

    remote.run(hook)
    return calls


def test_small_objects_go_over_the_wire(s3_remote_config: dict[str, Any], tmp_path: Path) -> None:
    """Push and fetch of small objects make no botocore PutObject/GetObject; off, they do."""
    for use_wire in (True, False):
        objects = ObjectStore(tmp_path / f"{use_wire}" / "cache" / "files")
        locks = _locks(objects, 5)
        cfg = {**s3_remote_config, "url": f"{s3_remote_config['url']}-{use_wire}"}
        r = open_remote(remote=RemoteConfig(**cfg), name="origin")
        assert isinstance(r, S3Remote)
        r.use_wire = use_wire
        calls = _botocore_calls(r)
        pushed = transfer.push(objects, r, locks, run_cache=False)
        assert len(pushed.transferred) == 5 and not pushed.failed
        other = ObjectStore(tmp_path / f"{use_wire}-b" / "cache" / "files")
        got = transfer.fetch(other, r, locks)
        assert sorted(got.transferred) == sorted(lk.outputs[0].hash for lk in locks)
        for lk in locks:
            assert other.read_bytes(lk.outputs[0].hash) == objects.read_bytes(lk.outputs[0].hash)
            assert other.from_remote(lk.outputs[0].hash)
        moved = calls["PutObject"] + calls["GetObject"]
        assert moved == (0 if use_wire else 10), calls


def test_a_second_put_is_refused_and_a_missing_key_is_absent(
    s3_remote_config: dict[str, Any],
) -> None:
    """If-None-Match holds on the wire: the second create of a key writes nothing."""
    r = open_remote(remote=RemoteConfig(**s3_remote_config), name="origin")
    key = r.object_key("0123456789abcdef")
    assert r.put_bytes(key, b"first") is True
    assert r.put_bytes(key, b"second") is False
    assert r.get_bytes(key) == b"first"
    assert r.exists(key) and not r.exists(r.object_key("fedcba9876543210"))
    with pytest.raises(FileNotFoundError):
        r.get_bytes(r.object_key("fedcba9876543210"))
    assert r.run(r._wire, r.root.split("/")[0]) is not None  # the wire did these


def test_extra_s3fs_kwargs_keep_botocore(s3_server, s3_remote_config: dict[str, Any]) -> None:
    """A remote whose s3fs options add to requests (here SSE) never uses the wire."""
    cfg = {**s3_remote_config, "s3_additional_kwargs": {"ServerSideEncryption": "AES256"}}
    r = open_remote(remote=RemoteConfig(**cfg), name="origin")
    bucket = r.root.split("/")[0]
    assert r.run(r._wire, bucket) is None
    key = r.object_key("0123456789abcdef")
    assert r.put_bytes(key, b"x")
    head = s3_server.client().head_object(Bucket=bucket, Key=key.partition("/")[2])
    assert head["ServerSideEncryption"] == "AES256"


def test_a_denied_request_on_the_wire_is_a_remote_error(
    s3_server, s3_bucket: str, make_faulty_proxy, tmp_path: Path
) -> None:
    """A 403 answer on the wire sorts as botocore's AccessDenied: permanent, named."""
    from tests.fixtures.s3 import remote_options

    proxy = make_faulty_proxy(every=1, modes=("403",), methods=("GET",))
    cfg = RemoteConfig(url=f"s3://{s3_bucket}/store", **remote_options(proxy.url))
    r = open_remote(remote=cfg, name="origin")
    wire = r.run(r._wire, s3_bucket)
    assert wire is not None
    with pytest.raises(WireError):
        r.run(wire.get, "store/files/01/23456789abcdef")
    with pytest.raises(RemoteError, match="AccessDenied"):
        transfer.download(ObjectStore(tmp_path / "c" / "files"), r, "0123456789abcdef", 3)


class _Stub:
    """A loopback HTTP server answering every request with one canned status and body."""

    def __init__(self, status: int, code: str | None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = (
            f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>".encode()
            if code
            else b""
        )

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bucket/"


class _Creds2:
    access_key, secret_key, token = "k", "s", None

    async def get_frozen_credentials(self) -> _Creds2:
        return self


@pytest.mark.parametrize(
    ("status", "code", "method", "outcome"),
    [
        (301, "PermanentRedirect", "get", "fallback"),
        (400, "AuthorizationHeaderMalformed", "put", "fallback"),
        (404, "NoSuchKey", "get", FileNotFoundError),
        (404, None, "head", False),
        (404, "NoSuchBucket", "get", RemoteError),
        (412, "PreconditionFailed", "put", False),
        (403, "AccessDenied", "get", RemoteError),
        (503, "SlowDown", "get", "transient"),
        (409, "ConditionalRequestConflict", "put", "transient"),
        (500, None, "head", "transient"),
    ],
)
def test_wire_answers_sort_as_botocores(
    status: int, code: str | None, method: str, outcome: object
) -> None:
    """Each S3 answer comes out of the wire as `classify` expects botocore's errors."""
    import asyncio

    import aiohttp

    from pivot_store.remote import Transient, classify
    from pivot_store.remote.s3wire import WireFallback

    stub = _Stub(status, code)

    class Http:
        session: aiohttp.ClientSession | None = None

        async def _get_session(self, proxy: object) -> aiohttp.ClientSession:
            self.session = self.session or aiohttp.ClientSession()
            return self.session

    async def go() -> object:
        http = Http()
        wire = Wire(stub.url, Signer("us-east-1"), _Creds2(), http)
        call = {"get": lambda: wire.get("k"), "head": lambda: wire.head("k"),
                "put": lambda: wire.put("k", b"x")}[method]  # fmt: skip
        try:
            return await call()
        except WireFallback:
            return "fallback"
        except Exception as e:
            err = classify(e, _Named())
            return "transient" if isinstance(err, Transient) else type(err)
        finally:
            if http.session:
                await http.session.close()

    try:
        got = asyncio.run(go())
    finally:
        stub.server.shutdown()
    assert got == outcome


class _Named:
    name, url = "origin", "s3://bucket"
