"""Remotes: the only factory (`open_remote`, `from_url`) and the names they share.

```
<remote>/files/ab/cdef...                          objects (same as the cache)
<remote>/runs/<name>/<fingerprint>/<entry>.json    run-cache entries
```

One module per backend behind one interface (`base.Remote`), so transfer code
never asks what it is talking to: S3 (`s3.py`: direct `head_object` /
`list_objects_v2` / conditional PUT through s3fs, one request each), a local
folder (`local.py`: temp file + `os.link`, the cache's own publishing rule) and
any other fsspec filesystem (`base.py`: memory, gcs, az). Errors are sorted and
retried in `errors.py`. This module maps a config entry's options onto the
backend and re-exports what callers import from `pivot_store.remote`.

Open a project's remote through `Repo.remote(name)`, which keeps one per
process and checks it once; `open_remote` makes a fresh one each call.
"""

from __future__ import annotations

import os
from typing import Any

from pivot_store.aio import _run_new_loop, amap, run_new_loop
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import RemoteError
from pivot_store.remote.base import HEAD_MAX, Listed, Remote
from pivot_store.remote.errors import (
    BACKOFF,
    RETRIES,
    Transient,
    aretrying,
    classify,
    error_code,
    retrying,
)
from pivot_store.remote.local import LocalRemote
from pivot_store.remote.s3 import MULTIPART_CHUNK, RANGE_JOBS, S3Remote
from pivot_store.remote_index import KnownIndex

__all__ = [
    "BACKOFF",
    "CONNECT_TIMEOUT",
    "DEFAULT_JOBS",
    "HEAD_MAX",
    "MULTIPART_CHUNK",
    "RANGE_JOBS",
    "READ_TIMEOUT",
    "RETRIES",
    "KnownIndex",
    "Listed",
    "LocalRemote",
    "Remote",
    "S3Remote",
    "Transient",
    "_run_new_loop",
    "amap",
    "aretrying",
    "classify",
    "error_code",
    "from_url",
    "identity",
    "open_remote",
    "retrying",
    "run_new_loop",
]

#: Objects (or requests) in flight when neither the caller nor the remote's
#: `jobs:` setting says otherwise.
DEFAULT_JOBS = 20
#: Socket timeouts for S3 (seconds): a stalled connection becomes a retry, not a hang.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30


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
    jobs: int | None = None,
) -> Remote:
    """A fresh Remote for the one called `name` (or the default) in `config`.

    Every option of the config entry is honoured the same way: `jobs` (unless
    the caller passes its own) sizes the connection pool, the rest
    (`endpoint_url`, `region`, `profile`, any fsspec option) go to the
    backend. An unknown name is a ConfigError naming the configured ones; an
    unknown protocol or a missing backend package is a RemoteError saying what
    to install.
    """
    if remote is None:
        if config is None:
            raise ValueError("open_remote needs a config or a remote")
        name, remote = config.remote(name)
    name = name or "remote"
    jobs = jobs or remote.jobs or DEFAULT_JOBS
    return from_url(remote.url, remote.storage_options(), name=name, jobs=jobs)


def from_url(url: str, options: dict[str, Any] | None = None, *, name: str = "remote",
             jobs: int = DEFAULT_JOBS) -> Remote:  # fmt: skip
    """The backend for `url`, with fsspec storage `options` (config-file names)."""
    options = dict(options or {})
    protocol, _, rest = url.partition("://") if "://" in url else ("file", "", url)
    if protocol in ("file", "local"):
        root = os.path.abspath(rest or "/")
        return LocalRemote(name, url, None, root, identity=f"file://{root}")

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
        ident = identity(url, options)
        return S3Remote(name, url, None, rest.rstrip("/"), make_fs, identity=ident)
    fs = make_fs()
    return Remote(name, url, fs, type(fs)._strip_protocol(url), identity=identity(url, options))


#: The storage options that change which store a URL names (never secrets).
IDENTITY_OPTIONS = (
    "endpoint_url", "region", "region_name", "profile",  # S3 and S3-compatible stores
    "project", "account_name", "account_host",  # GCS, Azure
)  # fmt: skip


def identity(url: str, options: dict[str, Any]) -> str:
    """`url` plus the identity options that are set, one `name=value` each, sorted.

    Two remotes with one `s3://bucket/prefix` on different endpoints, regions
    or profiles are different stores, so `KnownIndex` keeps one index each.
    Keys, secrets and tokens are not part of it (and the index file is named
    by a hash of it anyway).
    """
    found = {**(options.get("client_kwargs") or {}), **options}
    parts = [f"{k}={found[k]}" for k in IDENTITY_OPTIONS if found.get(k)]
    return " ".join([url.rstrip("/"), *sorted(parts)])
