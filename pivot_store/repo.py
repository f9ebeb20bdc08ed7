"""Repo: finds `.pivot/` and wires the store's parts together.

Everything a script, the CLI or the Dagster layer does to a project goes
through one Repo: it owns the paths, opens the state db lazily, and holds the
writer lock that keeps gc from removing an object between its add and the
lock that will name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pivot_store import keys
from pivot_store import oid as oids
from pivot_store.checkout import Checkout
from pivot_store.errors import LockError, NotAProject, TrackError
from pivot_store.gitignore import add as _gitignore_add
from pivot_store.lock_index import LockIndex, LockSummary, OutputSummary
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord, read_lock, write_lock
from pivot_store.manifest import Manifest, read_manifest
from pivot_store.manifest import build as build_manifest
from pivot_store.objects import ObjectStore
from pivot_store.state import MIN_SIZE, State
from pivot_store.workspace_index import WorkspaceIndex, output_status
from pivot_store.workspace_index import prune as prune_workspace

if TYPE_CHECKING:
    from pivot_store.config import Config, RemoteConfig
    from pivot_store.remote import Remote
    from pivot_store.sync import Target
    from pivot_store.transfer_result import Result

# pydantic (config) is imported where it is used: `status` and `checkout` read
# only locks (lockfile is plain Python) and never need it (~100 ms).

PIVOT_DIR = ".pivot"
SCAN_ATTEMPTS = 5
GITIGNORE = "/cache/\n/tmp/\n/state.lmdb/\n/gc.lock\n/gc.gate\n.tmp-*\n"
# Shared store holds this process has open, per .pivot/ folder (see Repo.writing).
_HELD: dict[str, int] = {}
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class StatusRow:
    name: str
    path: str | None
    status: str  # ok | modified | missing from workspace | missing from cache | not checked out


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.pivot_dir = self.root / PIVOT_DIR
        self.stages_dir = self.pivot_dir / "stages"
        self.runs_dir = self.pivot_dir / "runs"
        self.config_path = self.pivot_dir / "config.yaml"

    # --- finding and creating ----------------------------------------------
    @classmethod
    def find(cls, start: Path | None = None) -> Repo:
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / PIVOT_DIR).is_dir():
                return cls(folder)
        raise NotAProject(f"no {PIVOT_DIR}/ folder in {here} or above", "run `pivot init`")

    @classmethod
    def init(cls, root: Path) -> Repo:
        repo = cls(root)
        repo.pivot_dir.mkdir(parents=True, exist_ok=True)
        gi = repo.pivot_dir / ".gitignore"
        if not gi.exists():
            gi.write_text(GITIGNORE)
        if not repo.config_path.exists():
            from pivot_store.config import Config, save_config

            save_config(repo.config_path, Config())
        return repo

    @classmethod
    def open(cls, root: Path, *, create: bool = True) -> Repo:
        """The project at exactly `root`, created if missing (the Dagster default)."""
        if (Path(root) / PIVOT_DIR).is_dir():
            return cls(root)
        if not create:
            raise NotAProject(f"{root} has no {PIVOT_DIR}/ folder", "run `pivot init` there")
        return cls.init(root)

    # --- parts --------------------------------------------------------------
    @cached_property
    def config(self) -> Config:
        """The file's config plus the process's remotes: the environment's
        (`PIVOT_REMOTE_URL` ..., see config.py) and any `use_remote` added."""
        from pivot_store.config import with_env_remote

        return with_env_remote(self.file_config(), os.environ)

    def file_config(self) -> Config:
        """`.pivot/config.yaml` alone: what `pivot remote` edits and saves."""
        from pivot_store.config import load_config

        return load_config(self.config_path)

    def use_remote(self, name: str, remote: RemoteConfig) -> None:
        """Add `remote` as `name` for this process only (the IO manager's `remote_url`),
        the default unless the file names one. Every remote user goes through
        `config.remote(name)` (sync.opened), so this is the one factory's input."""
        from pivot_store.config import with_remote

        self.__dict__["config"] = with_remote(self.config, name, remote)

    def save_config(self, config: Config) -> None:
        from pivot_store.config import save_config

        save_config(self.config_path, config)
        self.__dict__.pop("config", None)  # re-read with the environment's remote

    @cached_property
    def objects(self) -> ObjectStore:
        # The config is read on the first write, not here (status and checkout never
        # load it); through a weak reference, so the store does not keep this Repo
        # (and its open state db) alive in a cycle.
        ref = weakref.ref(self)

        def fsync() -> bool:
            repo = ref()
            return bool(repo is not None and repo.config.fsync)

        return ObjectStore(self.pivot_dir / "cache" / "files", fsync=fsync)

    @cached_property
    def state(self) -> State:
        return State(self.pivot_dir / "state.lmdb")

    @contextlib.contextmanager
    def writing(self, exclusive: bool = False) -> Iterator[None]:
        """Hold the store lock: shared for writers, exclusive for gc.

        An object added inside a shared hold cannot be collected before the
        lock naming it is written, whatever gc's grace period.

        Writers pass through a gate (`gc.gate`) that gc holds exclusively while
        it waits: without it, overlapping writers (Dagster steps, parallel adds)
        keep the shared lock held forever and gc never runs. A nested hold in a
        process that already has one skips the gate, so it cannot deadlock
        against a gc waiting for that process.
        """
        self.pivot_dir.mkdir(parents=True, exist_ok=True)
        key = str(self.pivot_dir)
        fd = os.open(self.pivot_dir / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
        gate = -1
        counted = False
        try:
            with _HELD_GUARD:
                nested = not exclusive and _HELD.get(key, 0) > 0
            if not nested:
                gate = os.open(self.pivot_dir / "gc.gate", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(gate, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if not exclusive:
                if gate >= 0:
                    os.close(gate)  # writers only pass through the gate
                    gate = -1
                with _HELD_GUARD:
                    _HELD[key] = _HELD.get(key, 0) + 1
                counted = True
            yield
        finally:
            if counted:
                with _HELD_GUARD:
                    _HELD[key] -= 1
            if gate >= 0:
                os.close(gate)
            os.close(fd)

    # --- locks --------------------------------------------------------------
    def lock_path(self, name: str) -> Path:
        return keys.lock_path(self.stages_dir, name)

    def read_lock(self, name: str) -> Lock | None:
        path = self.lock_path(name)
        return read_lock(path) if path.exists() else None

    def write_lock(self, lock: Lock) -> None:
        write_lock(self.lock_path(lock.name), lock)

    def lock_names(self) -> list[str]:
        return self.lock_index.names()  # a writer's temp is never a lock

    @cached_property
    def lock_index(self) -> LockIndex:
        return LockIndex(self.stages_dir, self.state)

    def lock_summaries(self, names: list[str] | None = None) -> list[LockSummary]:
        """`iter_locks` as status, push and gc need it: an unchanged lock is not read
        again (`lock_index`). The named locks (all when None, sorted by name)."""
        return self.lock_index.summaries(names)

    def iter_locks(self, names: list[str] | None = None) -> Iterator[Lock]:
        """The named locks (all when None, by name); a name with no lock is an error."""
        if not names:  # listed inside stages/ already (`LockIndex.paths`): no resolve
            for path in self.lock_index.paths():
                yield read_lock(Path(path))
            return
        for name in names:
            path = self.lock_path(name)
            if not path.exists():
                raise LockError(f"no lock named {name!r}", "run `pivot status` to list locks")
            yield read_lock(path)

    def iter_run_locks(self) -> Iterator[Lock]:
        """Locks kept in the local run-cache (`.pivot/runs/`), for gc and lookups."""
        from pivot_store.runcache import iter_all_local

        yield from iter_all_local(self.runs_dir)

    # --- objects of outputs ---------------------------------------------------
    def add_path(self, path: Path, *, move: bool = False) -> OutputRecord:
        """Hash a file or folder into the cache; the record has no name or path yet."""
        return self._add_path(path, move=move)[0]

    def _add_path(self, path: Path, *, move: bool = False) -> tuple[OutputRecord, bool]:
        """`add_path`, and whether every file of it now is its cache object (a
        move-add linked them all in), so a hardlink checkout would change nothing."""
        path = Path(path)
        if path.is_symlink() and not path.resolve().is_relative_to(self.root):
            raise TrackError(f"{path} is a symlink out of the project", "track its target")
        if path.is_dir():
            for attempt in range(SCAN_ATTEMPTS):
                unlinked: list[str] = []
                try:
                    manifest = build_manifest(
                        path, self.objects, self.state, move=move, unlinked=unlinked
                    )
                    break
                except FileNotFoundError:
                    # A file vanished between listing and hashing (another process
                    # checking this folder out): list it again.
                    if attempt == SCAN_ATTEMPTS - 1:
                        raise TrackError(
                            f"{path} kept changing while it was being added",
                            "stop the processes writing to it, then add it again",
                        ) from None
            rec = OutputRecord(hash=manifest.oid(), size=manifest.size, kind="dir")
            return rec, move and not unlinked
        if not path.is_file():
            raise TrackError(f"{path} does not exist", "create it first, or check the path")
        added = self.objects.add_file(path, move=move, state=self.state)
        return OutputRecord(hash=added.oid, size=added.size, kind="file"), added.linked

    def manifest(self, oid: str) -> Manifest:
        return read_manifest(self.objects, oid)

    def output_oids(self, out: OutputRecord) -> dict[str, int]:
        """Every object an output needs: itself and, for a folder, its files."""
        found = {out.hash: out.size}
        if oids.is_dir(out.hash) and self.objects.exists(out.hash):
            for e in self.manifest(out.hash).files():
                found[e.hash] = e.size  # type: ignore[index]
        return found

    def checkout_output(
        self,
        out: OutputRecord,
        dest: Path | None = None,
        mode: str | None = None,
        *,
        writable: bool = False,
        previous: OutputRecord | None = None,
    ) -> Path:
        """Place an output at `dest` (default: its workspace path). A folder keeps every
        file except those `previous` (what its lock named before, same path) listed."""
        if dest is None:
            if out.path is None:
                raise TrackError(f"output {out.name!r} has no workspace path", "pass dest")
            dest = keys.workspace_path(self.root, out.path)
        co = Checkout(self.objects, mode or self.config.checkout_mode, writable=writable)
        if out.kind == "dir":
            co.tree(self.manifest(out.hash), dest, self._previous_manifest(out, previous))
        else:
            co.file(out.hash, dest, size=out.size)
            if out.size >= MIN_SIZE and not writable:
                self.state.set(dest, dest.stat(), out.hash)
        return dest

    def _previous_manifest(self, out: OutputRecord, previous: OutputRecord | None) -> Any:
        if previous is None or previous.kind != "dir" or previous.path != out.path:
            return None
        if not self.objects.exists(previous.hash):
            return None
        return self.manifest(previous.hash)

    # --- tracking workspace paths (pivot add / status / checkout) ------------
    def track(self, path: Path) -> Lock:
        """`pivot add`: store a workspace file or folder and write its lock."""
        full = Path(os.path.abspath(path))
        try:
            rel = full.relative_to(self.root).as_posix()
        except ValueError:
            raise TrackError(
                f"{path} is outside the project {self.root}", "move it inside"
            ) from None
        keys.workspace_path(self.root, rel)
        if rel == PIVOT_DIR or rel.startswith(PIVOT_DIR + "/"):
            # Tracking the store's own files would make config read-only and link
            # the cache into itself.
            raise TrackError(f"{path} is inside {PIVOT_DIR}/", "track files outside .pivot/")
        mode = self.config.checkout_mode
        move = mode in ("hardlink", "symlink")
        with self.writing():
            rec, linked = self._add_path(full, move=move)
            out = rec.replace(name=rel, path=rel)
            lock = Lock.build(rel, FingerprintParts(), [out])
            self.write_lock(lock)
            # Still inside the hold: another process may replace this lock at once,
            # and gc must not collect our objects before they are checked out.
            # A hardlink move-add that linked every file in already left the
            # workspace as this checkout would (symlink mode still needs it: the
            # files become links to the cache).
            if not (mode == "hardlink" and linked and not full.is_symlink()):
                self.checkout_output(out)
        _gitignore_add(self.root, rel)
        return lock

    def output_status(self, out: OutputRecord | OutputSummary) -> str:
        """ok | modified | missing from workspace | missing from cache."""
        index = self._workspace_index()
        try:
            return output_status(self.objects, index, self.root, out)
        finally:
            index.flush()

    def _workspace_index(self) -> WorkspaceIndex:
        return WorkspaceIndex(self.state, (self.objects.root,))

    def status(self, names: list[str] | None = None) -> list[StatusRow]:
        locks = self.lock_summaries(names)
        index = self._workspace_index()
        paths = [f"{self.root}/{o.path}" for lk in locks for o in lk.outputs if o.path]
        index.prefetch(paths)
        try:
            return [
                StatusRow(lk.name, o.path, output_status(self.objects, index, self.root, o))
                for lk in locks
                for o in lk.outputs
            ]
        finally:
            index.flush()
            if not names:  # every lock: the entries of deleted ones' outputs go
                prune_workspace(self.state, paths)

    def checkout(self, names: list[str] | None = None, mode: str | None = None) -> list[Path]:
        placed = []
        # The shared hold: a lock read here may be replaced by another process a
        # moment later, and gc must not collect its objects while we place them.
        with self.writing():
            for lock in self.iter_locks(names):
                for out in lock.outputs:
                    if out.path is not None:
                        placed.append(self.checkout_output(out, mode=mode))
        return placed

    # --- this project's remote (sync.py holds the logic) ----------------------
    def remote(self, name: str | None = None) -> Remote:
        """The remote `name` (default: the default remote): one per process, checked once."""
        from pivot_store import sync

        return sync.remote(self, name)

    def push(self, locks: Iterable[Target] | None = None, **options: Any) -> Result:
        """Upload the locks' objects, then their run-cache entries (`sync.push`)."""
        from pivot_store import sync

        return sync.push(self, locks, **options)

    def fetch(self, locks: Iterable[Target] | None = None, **options: Any) -> Result:
        """Download what the locks name and the cache lacks (`sync.fetch`)."""
        from pivot_store import sync

        return sync.fetch(self, locks, **options)

    def pull(self, locks: Iterable[Target] | None = None, **options: Any) -> Result:
        """`fetch`, then check the outputs out (`sync.pull`)."""
        from pivot_store import sync

        return sync.pull(self, locks, **options)
