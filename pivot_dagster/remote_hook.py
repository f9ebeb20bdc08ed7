"""The one place pivot_dagster talks to remotes (pivot_store.remote / transfer / runcache).

`fetch_output` pulls what one output needs into the local cache (every object
hash-checked by the store before it enters); `find_remote_result` asks the
remote run-cache for a fingerprint and pulls the objects of the first entry
that can be fetched completely. Remotes are opened once per process and name.
"""

from __future__ import annotations

import threading
from typing import Any

from pivot_store import runcache, transfer
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.remote import open_remote
from pivot_store.repo import Repo

_REMOTES: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _remote(repo: Repo, name: str) -> Any:
    key = (str(repo.root), name)
    with _LOCK:
        if key not in _REMOTES:
            _REMOTES[key] = open_remote(repo.config, name)
        return _REMOTES[key]


def fetch_output(repo: Repo, remote: str, out: OutputRecord, owner: str) -> None:
    """Fetch an output's objects (a folder's manifest, then its files); errors name each."""
    carrier = Lock.build(owner, FingerprintParts(), [out])
    with repo.writing():
        result = transfer.fetch(repo.objects, _remote(repo, remote), [carrier])
    result.raise_for_failures()


def find_remote_result(
    repo: Repo, remote: str, name: str, fingerprint: str, *, allow_pickle: bool = False
) -> Lock | None:
    """A remote result for the fingerprint, its objects now local; pickles only if trusted."""
    rem = _remote(repo, remote)
    for entry in runcache.lookup(rem, name, fingerprint):
        if not allow_pickle and any(o.format == "pickle" for o in entry.lock.outputs):
            continue
        with repo.writing():
            result = transfer.fetch(repo.objects, rem, [entry.lock])
        if result.ok:
            return entry.lock
    return None
