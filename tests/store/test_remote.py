"""remote.py: URL -> backend, storage options, key layout, existence checks, errors."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pivot_store import remote as remote_mod
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import ConfigError, RemoteError, UnsafeName
from pivot_store.remote import LocalRemote, Remote, S3Remote, Transient, classify, open_remote


def test_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(remote_mod.from_url(f"file://{tmp_path}"), LocalRemote)
    assert isinstance(remote_mod.from_url(str(tmp_path)), LocalRemote)
    assert type(remote_mod.from_url("memory://x/y")) is Remote
    s3 = remote_mod.from_url("s3://bucket/pre/fix", {"endpoint_url": "http://127.0.0.1:1"})
    assert isinstance(s3, S3Remote) and s3.root == "bucket/pre/fix"


def test_unknown_protocol_says_what_to_install() -> None:
    with pytest.raises(RemoteError, match="no filesystem for nosuch://"):
        remote_mod.from_url("nosuch://x")


def test_unknown_remote_name_is_config_error() -> None:
    config = Config(remotes={"origin": RemoteConfig(url="memory://x")})
    with pytest.raises(ConfigError, match=r"unknown remote 'other'.*pivot remote add other"):
        open_remote(config, "other")
    assert open_remote(config, None).name == "origin"


def test_key_layout_matches_the_cache() -> None:
    r = remote_mod.from_url("memory://root/p")
    assert r.object_key("0123456789abcdef") == "/root/p/files/01/23456789abcdef"
    assert r.object_key("0123456789abcdef.dir") == "/root/p/files/01/23456789abcdef.dir"
    with pytest.raises(UnsafeName):
        r.key("runs/../../escape")


def test_s3_options_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    opts = remote_mod._s3_options({"region": "eu-west-1", "profile": "dev"}, jobs=40)
    assert opts["endpoint_url"] == "http://127.0.0.1:9"
    assert opts["client_kwargs"] == {"region_name": "eu-west-1"}
    assert opts["profile"] == "dev"
    assert opts["config_kwargs"]["max_pool_connections"] >= 40
    explicit = remote_mod._s3_options({"endpoint_url": "http://x:1"}, jobs=1)
    assert explicit["endpoint_url"] == "http://x:1"


def test_aws_endpoint_url_env_reaches_moto(
    s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No endpoint in the config: the standard AWS_ENDPOINT_URL variable is honoured."""
    from tests.fixtures.s3 import KEY, SECRET

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    r = open_remote(remote=RemoteConfig(url=f"s3://{s3_bucket}/p"), name="env")
    r.check()
    assert r.put_bytes(r.key("hello"), b"hi") and r.get_bytes(r.key("hello")) == b"hi"


class _ClientError(Exception):
    def __init__(self, code: str, status: int) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_ClientError("SlowDown", 503), Transient),
        (_ClientError("InternalError", 500), Transient),
        (_ClientError("WeirdNewThing", 502), Transient),
        (_ClientError("ConditionalRequestConflict", 409), Transient),  # issue 12 item 8
        (ConnectionResetError(104, "reset"), Transient),
        (TimeoutError("timed out"), Transient),
        (_ClientError("NoSuchBucket", 404), RemoteError),
        (_ClientError("AccessDenied", 403), RemoteError),
        (_ClientError("InvalidAccessKeyId", 403), RemoteError),
        (_ClientError("SignatureDoesNotMatch", 403), RemoteError),
        (PermissionError(13, "denied"), RemoteError),
        (_ClientError("NoSuchKey", 404), FileNotFoundError),
        (FileNotFoundError(2, "gone"), FileNotFoundError),
    ],
)
def test_error_classification(exc: BaseException, kind: type) -> None:
    r = remote_mod.from_url("memory://x")
    wrapped = OSError(5, "translated")
    wrapped.__cause__ = exc
    for e in (exc, wrapped) if isinstance(exc, _ClientError) else (exc,):
        assert isinstance(classify(e, r, "thing"), kind)


def test_permanent_error_names_remote_and_fix() -> None:
    r = remote_mod.from_url("s3://b/p", {"endpoint_url": "http://127.0.0.1:1"}, name="prod")
    err = classify(_ClientError("InvalidAccessKeyId", 403), r)
    assert "'prod'" in str(err) and "s3://b/p" in str(err) and "AWS_ACCESS_KEY_ID" in str(err)


def test_retrying_gives_up_on_permanent_at_once() -> None:
    r = remote_mod.from_url("memory://x")
    calls = []

    def denied() -> None:
        calls.append(1)
        raise _ClientError("AccessDenied", 403)

    with pytest.raises(RemoteError):
        remote_mod.retrying(r, denied, "x")
    assert len(calls) == 1

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise _ClientError("SlowDown", 503)
        return "ok"

    calls.clear()
    assert remote_mod.retrying(r, flaky, "x") == "ok" and len(calls) == 4


@pytest.mark.parametrize("n", [3, 300])
def test_present_by_head_and_by_list(s3_remote_config: dict[str, Any], n: int) -> None:
    """Both existence paths (HEAD for a handful, LIST per prefix for many) agree."""
    r = open_remote(remote=RemoteConfig(**s3_remote_config), name="origin")
    oids = [uuid.uuid4().hex[:16] for _ in range(n)]
    for o in oids[::2]:
        r.put_bytes(r.object_key(o), b"x")
    assert r.present(oids) == set(oids[::2])


def test_s3_list_paginates(s3_remote_config: dict[str, Any]) -> None:
    r = open_remote(remote=RemoteConfig(**s3_remote_config), name="origin")
    names = {f"{i:04d}" for i in range(1100)}
    for n in names:
        r.fs.call_s3("put_object", Bucket=r.root.split("/")[0], Key=f"store/files/ab/{n}", Body=b"")
    assert set(r.list_names(f"{r.root}/files/ab")) == names


def test_every_name_callers_import_is_still_here() -> None:
    from pivot_store import aio, remote_index
    from pivot_store.remote import errors as errors_mod

    for name in ("KnownIndex", "amap", "_run_new_loop", "retrying", "aretrying", "classify",
                 "error_code", "Transient", "MULTIPART_CHUNK", "RANGE_JOBS", "HEAD_MAX",
                 "RETRIES", "BACKOFF", "CONNECT_TIMEOUT", "READ_TIMEOUT", "DEFAULT_JOBS",
                 "open_remote", "from_url", "Remote", "S3Remote", "LocalRemote"):  # fmt: skip
        assert hasattr(remote_mod, name), name
    assert remote_mod.KnownIndex is remote_index.KnownIndex
    assert remote_mod.amap is aio.amap and remote_mod.retrying is errors_mod.retrying


def test_the_check_runs_once_per_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = remote_mod.from_url(str(tmp_path / "remote"))
    calls: list[dict[str, bool]] = []
    real = r._check

    def counting(**kw: bool) -> bool:
        calls.append(kw)
        return real(**kw)

    monkeypatch.setattr(r, "_check", counting)
    r.check(must_exist=False)  # reachable: a folder remote need not exist yet
    for _ in range(2):  # a failed check is not remembered
        with pytest.raises(RemoteError, match="does not exist"):
            r.check()
    r.check(create=True)
    r.check()
    r.check(create=True)
    r.check(must_exist=False)
    assert len(calls) == 4 and (tmp_path / "remote").is_dir()
    # A fresh Remote on an existing folder: one check proves every level.
    r2 = remote_mod.from_url(str(tmp_path / "remote"))
    monkeypatch.setattr(r2, "_check", counting)
    calls.clear()
    r2.check(must_exist=False)
    r2.check(create=True)
    assert len(calls) == 1


def test_retrying_is_one_loop_for_sync_and_async(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync face drives the async loop by hand: it works inside a running loop too."""
    import asyncio

    from pivot_store.remote import errors as errors_mod

    waits: list[float] = []
    monkeypatch.setattr(errors_mod, "backoff", lambda attempt: waits.append(attempt) or 0.0)
    r = remote_mod.from_url("memory://x")

    def flaky_after(n: int) -> Any:
        calls: list[int] = []

        def fn() -> str:
            calls.append(1)
            if len(calls) < n:
                raise _ClientError("SlowDown", 503)
            return "ok"

        return fn

    assert remote_mod.retrying(r, flaky_after(3), "x") == "ok" and waits == [0, 1]

    async def inside_a_loop() -> str:
        sync_fn = flaky_after(2)

        async def afn() -> str:
            return sync_fn()

        first = remote_mod.retrying(r, flaky_after(2), "x")
        return first + await remote_mod.aretrying(r, afn, "x")

    waits.clear()
    assert asyncio.run(inside_a_loop()) == "okok" and waits == [0, 0]
    with pytest.raises(Transient, match="SlowDown"):
        remote_mod.retrying(r, flaky_after(99), "x", attempts=3)


def test_identity_is_url_endpoint_region_profile_never_secrets(tmp_path: Path) -> None:
    """Issue 12 item 7: `KnownIndex` is keyed by this, not by the URL alone."""
    opts = {"endpoint_url": "http://a:1", "key": "AKIA-secret", "secret": "s3cr3t", "region": "r1"}
    one = remote_mod.from_url("s3://b/p", opts).identity
    assert "http://a:1" in one and "r1" in one and "secret" not in one and "AKIA" not in one
    assert remote_mod.from_url("s3://b/p", {**opts, "endpoint_url": "http://b:1"}).identity != one
    assert remote_mod.from_url("s3://b/p", {**opts, "region": "r2"}).identity != one
    assert remote_mod.from_url("s3://b/p", {**opts, "profile": "x"}).identity != one
    assert remote_mod.from_url("s3://b/p", {**opts, "secret": "other"}).identity == one
    # A relative folder path names one folder, whatever the URL's spelling.
    assert remote_mod.from_url(str(tmp_path)).identity == f"file://{tmp_path}"
    assert remote_mod.from_url(f"file://{tmp_path}").identity == f"file://{tmp_path}"


class _ConditionalFS:
    """A store with a real conditional write: `mode="create"` refuses an existing key."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.modes: list[str] = []

    def exists(self, key: str) -> bool:
        raise AssertionError("a conditional create needs no existence check")

    def pipe_file(self, key: str, data: bytes, mode: str = "overwrite") -> None:
        self.modes.append(mode)
        if mode == "create" and key in self.data:
            raise FileExistsError(key)
        self.data[key] = data

    def put_file(self, local: str, key: str, mode: str = "overwrite") -> None:
        self.pipe_file(key, Path(local).read_bytes(), mode=mode)


@pytest.mark.parametrize("url", ["gs://b/p", "gcs://b/p", "az://c/p", "abfs://c/p"])
def test_gcs_and_azure_create_conditionally(url: str, tmp_path: Path) -> None:
    """Issue 12 item 10: gcsfs/adlfs `mode="create"` (ifGenerationMatch=0 / If-None-Match: *).

    Against a stand-in filesystem (gcsfs and adlfs are not installed here): what
    pivot asks of the backend, not the backends themselves, is what this proves.
    """
    fs = _ConditionalFS()
    r = Remote("g", url, fs, url.partition("://")[2])
    assert r.create == "conditional"
    src = tmp_path / "src"
    src.write_bytes(b"second")
    assert r.put_bytes(r.key("runs/x.json"), b"first") is True
    assert r.put_bytes(r.key("runs/x.json"), b"again") is False
    assert r.put_file(src, r.key("runs/x.json")) is False
    assert r.put_file(src, r.key("runs/y.json")) is True
    assert fs.data[r.key("runs/x.json")] == b"first" and set(fs.modes) == {"create"}


def test_create_modes_by_protocol() -> None:
    assert remote_mod.from_url("memory://x").create == "locked"
    assert Remote("o", "ftp://h/p", object(), "/p").create == "check"  # a race window: docs


def test_a_create_that_loses_a_409_race_is_already_present(
    s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """Issue 12 item 8: told 409 while another creator wins, the retry finds its object.

    The proxy answers the first conditional PUT of each key with 409
    ConditionalRequestConflict and, at that moment, the other creator's PUT
    lands on the bucket directly; pivot's retry must report "already present"
    (False), not an error, and leave the winner's bytes.
    """
    from urllib.parse import urlsplit

    from tests.fixtures.conflict_proxy import ConflictProxy
    from tests.fixtures.s3 import remote_options

    client = s3_server.client()

    class Racing(ConflictProxy):
        def _conflict(self, method: str, path: str, headers: dict[str, str]) -> bool:
            hit = super()._conflict(method, path, headers)
            if hit:
                key = urlsplit(path).path.lstrip("/").removeprefix(f"{s3_bucket}/")
                client.put_object(Bucket=s3_bucket, Key=key, Body=b"winner")
            return hit

    proxy = Racing(s3_server.port, conflicts=1).start()
    try:
        r = remote_mod.from_url(f"s3://{s3_bucket}/race", remote_options(proxy.url))
        src = tmp_path / "src"
        src.write_bytes(b"loser")
        key, obj = r.key("runs/a.json"), r.key("files/ab/cdef")
        # As every writer calls them (transfer, runcache): through the retry loop.
        assert remote_mod.retrying(r, lambda: r.put_bytes(key, b"loser"), key) is False
        assert remote_mod.retrying(r, lambda: r.put_file(src, obj), obj) is False
    finally:
        proxy.stop()
    assert len(proxy.answered) == 2
    assert r.get_bytes(key) == b"winner" and r.get_bytes(obj) == b"winner"
