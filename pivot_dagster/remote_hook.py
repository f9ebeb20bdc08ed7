"""The one place pivot_dagster talks to remotes, so the remotes API can land behind it.

`fetch_objects` pulls named objects into the local cache (hash-checked by the
store); `find_remote_result` asks the remote run-cache for a fingerprint. Both
use `pivot_store.transfer` / `pivot_store.runcache` when those expose the
functions below, and otherwise fail with one clear error (fetch) or report no
hit (lookup).
"""

from __future__ import annotations

from typing import Any

from pivot_store.errors import ObjectMissing
from pivot_store.lockfile import Lock
from pivot_store.repo import Repo


def _api(module: str, attr: str) -> Any:
    try:
        mod = __import__(f"pivot_store.{module}", fromlist=[attr])
    except ImportError:
        return None
    return getattr(mod, attr, None)


def fetch_objects(repo: Repo, remote: str, oids: list[str]) -> None:
    pull = _api("transfer", "pull_objects")
    if pull is None:
        raise ObjectMissing(
            f"{len(oids)} object(s) are missing locally (first: {oids[0]})",
            f"this pivot cannot fetch from remote {remote!r} yet; run `pivot pull -r {remote}`",
        )
    pull(repo, remote, oids)


def find_remote_result(repo: Repo, remote: str, name: str, fingerprint: str) -> Lock | None:
    lookup = _api("runcache", "find_result")
    if lookup is None:
        return None
    return lookup(repo, remote, name, fingerprint)
