"""This project's remote, and moving its locks' objects to and from it.

The one owner of "this repo's remote": every caller (the CLI, the IO manager,
the sensors, the integrity checks, remote-first mode) gets its Remote here, so
each honours the remote's settings in `.pivot/config.yaml` the same way:
`jobs` (the default concurrency and the connection pool), `endpoint_url`,
`region`, `profile` and any other storage option. A Remote is opened once per
process per (project, remote name, settings) and checked once: `Remote.check`
remembers the level it passed, so the pushes and fetches that reuse it make
no second check (a push that `KnownIndex` settles makes no request at all).

`push`, `fetch` and `pull` are `transfer.push` / `transfer.fetch` for a
project: they name locks by name, `Lock` or `RunEntry`, pick the remote and
the concurrency, and hold the store's shared write lock (`Repo.writing`), so
gc never collects an object between its fetch and the checkout that needs it.
`Repo.remote/push/fetch/pull` delegate here.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from pivot_store import known_push, runcache, transfer
from pivot_store.config import Config
from pivot_store.errors import PivotError
from pivot_store.lock_index import LockSummary
from pivot_store.lockfile import Lock, OutputRecord
from pivot_store.objects import ObjectStore
from pivot_store.remote import DEFAULT_JOBS, Remote, open_remote
from pivot_store.remote_index import KnownIndex
from pivot_store.runcache import RunEntry
from pivot_store.state import NullState
from pivot_store.transfer_result import Progress, Result

#: A lock to move: its name, the Lock, or a run-cache entry read from the remote
#: (which also records the entry as present there, see `fetch`).
Target = str | Lock | RunEntry


class Project(Protocol):
    """The parts of a `Repo` this module uses (Repo imports this module, not back)."""

    root: Path

    @property
    def config(self) -> Config: ...
    @property
    def objects(self) -> ObjectStore: ...
    def writing(self, exclusive: bool = False) -> AbstractContextManager[None]: ...
    @property
    def state(self) -> NullState: ...
    def iter_locks(self, names: list[str] | None = None) -> Iterator[Lock]: ...
    def lock_summaries(self, names: list[str] | None = None) -> list[LockSummary]: ...
    def checkout_output(
        self, out: OutputRecord, dest: Path | None = None, mode: str | None = None
    ) -> Path: ...


# (project root, remote name, its settings) -> (the Remote, the jobs its pool is sized for)
_OPENED: dict[tuple[str, str, str], tuple[Remote, int]] = {}
_GUARD = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child opens its own remotes (an s3fs loop or pool is not shared)."""
    global _GUARD
    _GUARD = threading.Lock()
    _OPENED.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def opened(repo: Project, name: str | None = None, jobs: int | None = None) -> tuple[Remote, int]:
    """The process's Remote for `name` (default: the default remote), unchecked, and its jobs.

    `jobs` defaults to the remote's `jobs:` setting, else DEFAULT_JOBS. A
    Remote opened for fewer jobs than asked is replaced by one whose pool fits
    (it is checked again, once). Changed settings (another URL or option under
    the same name) open a new Remote, never reuse the old one. Unknown names
    raise ConfigError.
    """
    rname, cfg = repo.config.remote(name)
    want = jobs or cfg.jobs or DEFAULT_JOBS
    key = (str(repo.root), rname, json.dumps(cfg.model_dump(mode="json"), sort_keys=True))
    with _GUARD:
        have = _OPENED.get(key)
        if have is None or have[1] < want:
            have = (open_remote(remote=cfg, name=rname, jobs=want), want)
            _OPENED[key] = have
    return have[0], want


def remote(repo: Project, name: str | None = None) -> Remote:
    """The project's remote `name`, opened once per process and checked once.

    The check is the lenient one (reachable: S3's bucket exists and the
    credentials work; a folder remote need not exist yet), so a run-cache
    lookup on a fresh remote is a miss, not an error. Push and fetch raise it
    to the level they need, at most once more per process.
    """
    rem, _ = opened(repo, name)
    rem.check(must_exist=False)
    return rem


def _resolve(repo: Project, targets: Iterable[Target] | None) -> tuple[list[Lock], set[str]]:
    """(the locks, the run-cache entry names seen on the remote) for `targets`.

    None is every lock of the project; an empty list is none.
    """
    if targets is None:
        return list(repo.iter_locks()), set()
    locks: list[Lock] = []
    seen: set[str] = set()
    for t in targets:
        if isinstance(t, str):
            locks += repo.iter_locks([t])
        elif isinstance(t, RunEntry):
            locks.append(t.lock)
            seen.add(runcache.entry_rel(t.lock))
        else:
            locks.append(t)
    return locks, seen


def push(
    repo: Project,
    locks: Iterable[Target] | None = None,
    *,
    remote: str | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    run_cache: bool = True,
    verify_remote: bool = False,
    progress: Progress | None = None,
    verify_every: float | None = None,
) -> Result:
    """Upload what `locks` name and the remote lacks, then their run-cache entries.

    `transfer.push` under the shared write lock: files, then manifests, then an
    entry per complete lock (`run_cache=False`: no entries), never replacing
    anything. `verify_remote` checks every object and ignores `KnownIndex`.
    Per-object failures are in `Result.failed` (`raise_for_failures` turns them
    into one TransferError); a permanent remote error raises RemoteError.
    """
    rem, jobs = opened(repo, remote, jobs)
    with repo.writing():
        done = None
        if not dry_run and not verify_remote:
            done = _settled(repo, rem, locks, run_cache, progress, verify_every)
            if done is not None and not done[1]:
                return done[0]
        todo, _ = _resolve(repo, done[1] if done is not None else locks)
        res = transfer.push(
            repo.objects, rem, todo, jobs=jobs, dry_run=dry_run, run_cache=run_cache,
            progress=progress, verify_remote=verify_remote, verify_every=verify_every,
        )  # fmt: skip
        return known_push.merge(done[0], res) if done is not None else res


def _settled(
    repo: Project,
    rem: Remote,
    targets: Iterable[Target] | None,
    run_cache: bool,
    progress: Progress | None,
    verify_every: float | None,
) -> tuple[Result, list[str]] | None:
    """`known_push.settled` for locks named by name (or all): the locks with nothing
    to push, decided without reading them, and the names of the others; None:
    run the full push."""
    names = None if targets is None else list(targets)
    if names is not None and (not names or not all(isinstance(t, str) for t in names)):
        return None
    if KnownIndex(repo.objects.root, rem.identity).verify_due(verify_every):
        return None  # `transfer.push` turns `verify_remote` on
    return known_push.settled(
        repo.objects,
        repo.state,
        rem,
        lambda: repo.lock_summaries(names),  # type: ignore[arg-type]
        run_cache=run_cache,
        progress=progress,
    )


def fetch(
    repo: Project,
    locks: Iterable[Target] | None = None,
    *,
    remote: str | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Result:
    """Download what `locks` name and the cache lacks (manifests, then their files).

    `transfer.fetch` under the shared write lock: every object is hash-checked
    before it enters the cache (contract line 3). What it proved is on the
    remote is recorded in `KnownIndex`, and so is the entry of each `RunEntry`
    target: pushing the same locks straight back makes no request.
    """
    rem, jobs = opened(repo, remote, jobs)
    with repo.writing():
        todo, seen = _resolve(repo, locks)
        return transfer.fetch(
            repo.objects, rem, todo, jobs=jobs, dry_run=dry_run, progress=progress, entries=seen
        )


def pull(
    repo: Project,
    locks: Iterable[Target] | None = None,
    *,
    remote: str | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    mode: str | None = None,
) -> Result:
    """`fetch`, then check out each output with a workspace path (`pivot pull`).

    Only locks whose objects are all local (`Result.complete_locks`) are checked
    out, in `mode` (default: the config's checkout mode), inside the same hold
    as the fetch. `Result.checked_out` lists the workspace paths placed; a
    checkout that fails is in `Result.failed` as `<lock>:<path>`. A dry run
    checks nothing out.
    """
    rem, jobs = opened(repo, remote, jobs)
    with repo.writing():
        todo, seen = _resolve(repo, locks)
        res = transfer.fetch(
            repo.objects, rem, todo, jobs=jobs, dry_run=dry_run, progress=progress, entries=seen
        )
        if not dry_run:
            _checkout(repo, todo, res, mode)
    return res


def _checkout(repo: Project, locks: list[Lock], res: Result, mode: str | None) -> None:
    complete = set(res.complete_locks)
    for lock in locks:
        if lock.name not in complete:
            continue
        for out in lock.outputs:
            if out.path is None:
                continue
            try:
                repo.checkout_output(out, mode=mode)
            except PivotError as e:
                res.failed[f"{lock.name}:{out.path}"] = f"checkout failed: {e}"
                continue
            res.checked_out.append(out.path)
