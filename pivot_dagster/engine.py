"""Plain result storage over one Repo: store, record, find, restore, load. No Dagster.

The IO manager builds one `Engine` per process and delegates to it; the
sensors' walks, remote-first mode and the integrity checks build their own
over the Repo they are given (cheap: the Repo and its remotes are shared).

Write order (contract): objects, then the lock, then the local run-cache
entry, all under the repo's shared writer lock so gc cannot collect an object
between its add and the lock naming it. The run-cache and pointer layouts are
`pivot_store.runcache`'s; nothing here builds a store path.

The engine is also the one place pivot_dagster talks to remotes: `fetch`es
what an output needs (every object hash-checked by the store before it
enters), asks the remote run-cache for a fingerprint (`remote_hits`: the
lookup, its checks, and the run's prefetched lookups), pushes, and reads and
writes latest pointers. Remotes are opened once per process and name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pivot_dagster import formats, remote_hits
from pivot_dagster.formats import expect
from pivot_dagster.formats.base import FormatHandler
from pivot_dagster.formats.path import check_remote_checkout
from pivot_store import atomic, keys, pointers, run_lookup, runcache, transfer
from pivot_store.errors import (
    LockError,
    ObjectMissing,
    PivotError,
    TrackError,
    UnsafeName,
)
from pivot_store.lockfile import FingerprintParts, Lock, Origin, OutputRecord
from pivot_store.repo import Repo
from pivot_store.signing import signing_key

LOCK_SOURCE = "lock"  # Found.source: the current lock already holds the result
LOCAL_SOURCE = "local run-cache"


class MissingUpstream(PivotError, FileNotFoundError):
    """A downstream asked for an upstream pivot has never stored."""


class UntrustedPickle(PivotError):
    """A pickle fetched from a remote, while `trust_remote_pickle` is off."""


class Found(NamedTuple):
    """A stored result for a fingerprint and where it was found: `LOCK_SOURCE`,
    `LOCAL_SOURCE`, or the remote's label (`<name> (<url>)`, as events show it)."""

    lock: Lock
    source: str


class Engine:
    """Results of one Repo. `remote` is where to push (and, with `pull_missing`, pull)."""

    def __init__(
        self,
        repo: Repo,
        *,
        remote: str | None = None,
        pull_missing: bool = True,
        trust_remote_pickle: bool = False,
        checkout_mode: str | None = None,
    ) -> None:
        self.repo = repo
        self.remote = remote
        self.pull_remote = remote if pull_missing else None
        self.trust_remote_pickle = trust_remote_pickle
        self._checkout_mode = checkout_mode

    @property
    def checkout_mode(self) -> str:
        """The IO manager's own mode, else the project's (config.yaml)."""
        return self._checkout_mode or self.repo.config.checkout_mode

    # --- storing ---------------------------------------------------------------
    def store_value(self, value: Any, handler: FormatHandler, name: str = "result") -> OutputRecord:
        """Serialize `value` straight into the cache (one pass: hash while writing)."""
        if handler.kind == "path":
            return self._store_path(Path(value), name)
        with self.repo.objects.writer() as w:
            handler.dump(value, w)
        return OutputRecord(name=name, hash=w.oid, size=w.size, format=handler.name)  # type: ignore[attr-defined]

    def _store_path(self, path: Path, name: str) -> OutputRecord:
        """A file or folder the asset wrote in the project: cached, then left in place."""
        repo = self.repo
        full = Path(os.path.abspath(repo.root / path))
        try:
            rel = full.relative_to(repo.root).as_posix()
        except ValueError:
            raise TrackError(
                f"output path {path} is outside the project {repo.root}",
                "write Path outputs inside the project folder",
            ) from None
        keys.workspace_path(repo.root, rel)
        try:
            keys.remote_checkout_name(rel)
        except UnsafeName as e:
            raise TrackError(str(e), "write Path outputs outside .git/ and .pivot/") from None
        # By copy, never by linking the asset's own file in: the next run may rewrite
        # it in place (root ignores 0444), which must not reach this result's object.
        rec = repo.add_path(full, move=False)
        return _as_path_record(rec, name, rel)

    def save_computed(
        self,
        name: str,
        parts: FingerprintParts,
        value: Any,
        handler: FormatHandler,
        output_name: str,
        *,
        run_cache: bool,
        origin: Origin | None = None,
    ) -> Lock:
        """Store a value the body returned, then its lock (one writer hold for both)."""
        with self.repo.writing():
            out = self.store_value(value, handler, output_name)
            lock = Lock.build(name, parts, [out], origin)
            self.record(lock, run_cache=run_cache)
        return lock

    def save_hit(self, name: str, hit: Lock, parts: FingerprintParts) -> Lock:
        """Make a hit's objects local (and its Path outputs checked out), then its lock.

        The lock keeps the hit's origin: who computed the result, not who reused it."""
        with self.repo.writing():
            lock = Lock.build(name, parts, self.restore(hit, name), hit.origin)
            self.record(lock)
        return lock

    def record(self, lock: Lock, *, run_cache: bool = True) -> None:
        """Write the lock and, if new, its run-cache entry (objects must already be stored).

        The lock file is left alone when it already holds these exact bytes: a
        cache hit then changes nothing on disk, and rewriting (with its fsyncs)
        would be the most expensive thing the hit does, so equal bytes are kept.
        """
        data = lock.to_yaml()
        path = self.repo.lock_path(lock.name)
        try:
            unchanged = path.read_bytes() == data
        except OSError:
            unchanged = False
        if not unchanged:  # `Repo.write_lock`, with the bytes already serialized once
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_replace(path, data)
        if run_cache:
            runcache.write_local(self.repo.runs_dir, lock, data)

    # --- finding ---------------------------------------------------------------
    def outputs_present(self, lock: Lock) -> bool:
        return all(self.repo.objects.exists(o.hash) for o in lock.outputs)

    def find_result(
        self,
        name: str,
        parts: FingerprintParts,
        expected: formats.Expected | None = None,
        too_old: Callable[[Lock], str | None] | None = None,
    ) -> Found | None:
        """A stored result for this fingerprint: the lock, else the local, else the
        remote run-cache (when pulling). Only a result whose objects are all present
        (or were just pulled) counts; a remote one only in a format the asset could
        have produced (`expected`, see `formats.expect`), and pickles only if trusted.

        `too_old` (the asset's max_age) passes over remote entries it names a reason
        for: a remote's head is its fingerprint's first entry, so a newer one beside
        it may still be fresh."""
        found = self.find_local(name, parts)
        if found is None and self.pull_remote is not None:
            rem = self._open(self.pull_remote)
            fp = parts.digest(name)

            def refuse(lk: Lock) -> str | None:
                return self.refusal(lk, expected) or (too_old(lk) if too_old else None)

            hit = remote_hits.find(self.repo, rem, name, fp, refuse)
            if hit is not None:
                found = Found(hit, f"{rem.name} ({rem.url})")
        return found

    def find_local(self, name: str, parts: FingerprintParts) -> Found | None:
        """`find_result` without the remote: the lock, else the local run-cache."""
        fp = parts.digest(name)
        lock = self.repo.read_lock(name)
        if lock is not None and lock.fingerprint == fp and self._usable_here(lock):
            return Found(lock, LOCK_SOURCE)
        for cand in runcache.iter_local(self.repo.runs_dir, name, fp):
            if self._usable_here(cand):
                return Found(cand, LOCAL_SOURCE)
        return None

    def recorded_lock(self, name: str, fp: str, h: str) -> tuple[Lock | None, bool]:
        """(the lock a materialization recorded, whether it has a run-cache entry): the
        current lock, or the local run-cache when a newer run has replaced it."""
        lock = self.repo.read_lock(name)
        if lock is not None and lock.fingerprint == fp and lock.outputs[0].hash == h:
            return lock, runcache.local_entry_path(self.repo.runs_dir, lock).exists()
        for cand in runcache.iter_local(self.repo.runs_dir, name, fp):
            if cand.outputs and cand.outputs[0].hash == h:
                return cand, True
        return None, False

    def _usable_here(self, lock: Lock) -> bool:
        """A local result: its objects present, each output in a known format."""
        known = all(o.format in formats.registry.BY_NAME for o in lock.outputs)
        return known and self.outputs_present(lock)

    def refusal(self, lock: Lock, expected: formats.Expected | None = None) -> str | None:
        """Why a lock read from a remote cannot be this asset's result here, or None."""
        why = expect.lock_refusal(lock, expected, self.repo.read_lock(lock.name))
        pickled = any(o.format == "pickle" for o in lock.outputs)
        if why is None and pickled and not self.trust_remote_pickle:
            why = "a pickle from a remote (trust_remote_pickle is off)"
        return why

    # --- restoring and loading -----------------------------------------------------
    def ensure_present(self, out: OutputRecord, owner: str, lock: Lock | None = None) -> bool:
        """Make the output's objects local; True if they had to come from the remote.

        With a signing key and the lock known, objects come back checked against a
        signed record of that result when the remote has one (else by xxh64 only:
        a lock from git carries no signature)."""
        missing = [o for o in self.repo.output_oids(out) if not self.repo.objects.exists(o)]
        if not missing:
            return False
        if self.pull_remote is None:
            raise ObjectMissing(
                f"object {out.hash} of {owner!r} is not in the local cache and no remote is "
                "configured",
                f"re-materialize {owner!r}, or set `remote` on PivotIOManager and push it from "
                "where it was built",
            )
        record = None
        if lock is not None and signing_key() is not None:
            rem = self._open(self.pull_remote)
            record = pointers.signed_record(rem, lock.name, lock.fingerprint, out.hash)
        if record is None:
            self._fetch_output(out, owner)
            return True
        self.repo.fetch([record], remote=self.pull_remote).raise_for_failures()
        self._check_signed(record, str(self.pull_remote))
        return True

    def restore(self, lock: Lock, owner: str) -> list[OutputRecord]:
        """A stored result made usable here: objects local, Path outputs checked out."""
        outs = list(lock.outputs)
        paths = any(out.path is not None for out in outs)
        before = self.repo.read_lock(owner) if paths else None  # only Path outputs use it
        for out in outs:
            self.ensure_present(out, owner, lock)
            if out.path is not None:
                # Checks a Path output out again; of a folder's other files only those
                # its lock here listed before are removed.
                self.load(out, owner=owner, previous=expect.same_output(before, out.name))
        return outs

    def load_upstream(
        self, name: str, lock: Lock | None, output: str, python_type: Any = None
    ) -> Any:
        """An upstream's stored value, its objects fetched first when missing."""
        if lock is None:
            raise MissingUpstream(
                f"no pivot lock for upstream {name!r}",
                "materialize that asset (with PivotIOManager) before its downstream",
            )
        out = lock.output(output) if len(lock.outputs) > 1 else lock.outputs[0]
        self.ensure_present(out, name, lock)
        return self.load(out, python_type, owner=name)

    def load(
        self,
        out: OutputRecord,
        python_type: Any = None,
        *,
        owner: str = "output",
        previous: OutputRecord | None = None,
    ) -> Any:
        """Read a stored output back with the handler its lock names.

        Every load checks (issue 12): a missing format is an error, never pickle; a
        pickle whose object came from a remote (store provenance, on every load, not
        only the one that fetched it) is refused unless `trust_remote_pickle`; a Path
        output is checked out only at a name remote data may use (no `.git`/`.pivot`).
        """
        if not out.format:
            raise LockError(
                f"output {out.name!r} of {owner!r} has no format; pivot never reads it as pickle",
                f"re-materialize {owner!r}",
            )
        handler = formats.by_name(out.format)
        if handler.kind == "path":
            return self._checkout_path(out, owner, previous)
        untrusted = handler.name == "pickle" and not self.trust_remote_pickle
        if untrusted and self.repo.objects.from_remote(out.hash):
            raise UntrustedPickle(
                f"{owner!r} is a pickle that came from a remote ({self.remote!r})",
                "loading it could run code; re-materialize it here, or set "
                "trust_remote_pickle=True if only trusted deployments write the remote",
            )
        return handler.load(self.repo.objects.path(out.hash), python_type)

    def _checkout_path(
        self, out: OutputRecord, owner: str, previous: OutputRecord | None
    ) -> Path | None:
        if out.path is None:
            return None
        keys.remote_checkout_name(out.path)
        dest = keys.workspace_path(self.repo.root, out.path)
        check_remote_checkout(self.repo, out, dest)
        if self.repo.output_status(out) != "ok":
            # A private copy: the asset's next run may write into it in place.
            mode = "reflink" if self.checkout_mode == "reflink" else "copy"
            self.repo.checkout_output(out, dest, mode, writable=True, previous=previous)
        return dest

    def object_path(self, out: OutputRecord) -> Path:
        """Where the value lies: its workspace path, or its cache object."""
        if out.path is not None:
            return self.repo.root / out.path
        return self.repo.objects.path(out.hash)

    # --- the remote ------------------------------------------------------------
    def push(
        self, locks: list[Lock], *, run_cache: bool = True, verify_every: float | None = None
    ) -> transfer.Result:
        """Objects, then run-cache entries, of `locks`; per-object errors kept in the result."""
        self._open(self.remote)  # a clear error when no remote is configured
        return self.repo.push(
            locks, remote=self.remote, run_cache=run_cache, verify_every=verify_every
        )

    def publish_latest(self, lock: Lock) -> bool:
        """Name `lock` its name's newest result on the remote (objects pushed first)."""
        return pointers.publish_latest(self._open(self.remote), lock, self.repo.objects)

    def latest_lock(self, name: str) -> Lock | None:
        entry = self.latest_entry(name)
        return entry.lock if entry is not None else None

    def latest_entry(self, name: str, output_hash: str | None = None) -> runcache.RunEntry | None:
        """The remote's newest valid pointer for `name` (to `output_hash` if given),
        its signed digests kept."""
        return pointers.latest_entry(self._open(self.remote), name, output_hash=output_hash)

    def fetch_signed(self, entry: runcache.RunEntry) -> None:
        """A signed entry's objects made local and checked against its signed SHA-256.

        Without digests (no key, an unsigned entry) nothing is done: the objects
        come when loaded, xxh64-checked. An object that fails is removed from the
        cache and CorruptObject names it; a failed fetch raises TransferError.
        """
        if entry.digests is None:
            return
        rem = self._open(self.remote)
        with self.repo.writing():
            self.repo.fetch([entry], remote=self.remote).raise_for_failures()
            self._check_signed(entry, rem.name)

    def remote_entries(self, name: str, fp: str) -> run_lookup.Entries:
        """The remote run-cache entries for (name, fingerprint), head first (`run_lookup`)."""
        return run_lookup.lookup(self._open(self.remote), name, fp)

    def missing_on_remote(self, locks: list[Lock]) -> list[str]:
        """Object ids the locks need that the remote lacks."""
        status = transfer.compare(self.repo.objects, self._open(self.remote), locks)
        return sorted({oid for _, oid in status.missing_on_remote})

    def _fetch_output(self, out: OutputRecord, owner: str) -> None:
        """Fetch an output's objects (a folder's manifest, then its files); errors name each."""
        carrier = Lock.build(owner, FingerprintParts(), [out])
        self._open(self.pull_remote)  # a clear error when no remote is configured
        self.repo.fetch([carrier], remote=self.pull_remote).raise_for_failures()

    def _check_signed(self, entry: runcache.RunEntry, remote: str) -> None:
        remote_hits.check_signed(self.repo, entry, remote)

    def _open(self, name: str | None) -> Any:
        if name is None:
            raise PivotError(
                "no remote is configured", "set `remote` on PivotIOManager or default_remote"
            )
        return self.repo.remote(name)


def _as_path_record(rec: OutputRecord, name: str, rel: str) -> OutputRecord:
    return rec.replace(name=name, path=rel, format="path")
