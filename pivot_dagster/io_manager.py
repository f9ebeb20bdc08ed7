"""PivotIOManager: Dagster's IO manager face over a pivot Repo.

Thin on purpose: naming is `asset_keys`, formats are `formats`, storing and
finding results is `results`; this module only reads Dagster's contexts. It
follows `UPathIOManager`'s partition rules (one partition per output; a
downstream reading several upstream partitions gets a dict by partition key;
`allow_missing_partitions` input metadata skips absent ones) so users can swap
it in without changing assets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManager,
    DataVersion,
    InputContext,
    MetadataValue,
    OutputContext,
)
from pydantic import Field, PrivateAttr

from pivot_dagster import asset_keys, fingerprint, formats, remote_first, results
from pivot_dagster.types import CacheHit, Deferred, PivotType
from pivot_store.errors import PivotError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.repo import Repo

PARTS_KEY = "pivot/fingerprint_parts"
FORMAT_KEY = "pivot/format"


class MissingUpstream(PivotError, FileNotFoundError):
    """A downstream asked for an upstream pivot has never stored."""


class UntrustedPickle(PivotError):
    """A pickle fetched from a remote, while `trust_remote_pickle` is off."""


class PivotIOManager(ConfigurableIOManager):
    """Stores every output by content hash in `<project_dir>/.pivot` and records it in a lock."""

    project_dir: str = Field(default=".", description="Project folder holding `.pivot/`.")
    remote: str | None = Field(
        default=None, description="Remote name from .pivot/config.yaml for pulls and run-cache."
    )
    checkout_mode: str | None = Field(
        default=None, description="hardlink / symlink / copy / reflink for Path outputs."
    )
    formats: dict[str, str] = Field(
        default_factory=dict, description="Asset key ('a/b') -> format name, forcing a format."
    )
    pull_missing: bool = Field(
        default=True, description="Fetch objects missing locally from the remote on load."
    )
    trust_remote_pickle: bool = Field(
        default=False, description="Allow loading pickles that were fetched from a remote."
    )
    push_on_write: bool = Field(
        default=False,
        description="Push each output (objects, then run-cache entry) right after storing it; "
        "a failed push is a warning (the push sensor retries it).",
    )
    remote_first: bool = Field(
        default=False,
        description="For executors that isolate steps: every output is on the remote before "
        "the step ends (or the step fails), and upstream locks missing locally are resolved "
        "from the remote (see pivot_dagster.remote_first).",
    )

    _repo: Repo | None = PrivateAttr(default=None)

    # --- wiring ----------------------------------------------------------------
    def get_repo(self) -> Repo:
        """The Repo, opened once per process (each multiprocess step opens its own)."""
        if self._repo is None:
            repo = Repo.open(Path(self.project_dir).resolve(), create=True)
            if self.checkout_mode:
                repo.__dict__["config"] = repo.config.model_copy(
                    update={"checkout_mode": self.checkout_mode}
                )
            self._repo = repo
        return self._repo

    def upstream_fallback(self, instance: Any = None) -> Any:
        """In remote-first mode, how a missing upstream lock is found; else None."""
        if not self.remote_first:
            return None
        return remote_first.fallback(self.get_repo(), self.remote_name(), instance)

    def remote_name(self) -> str | None:
        if self.remote:
            return self.remote
        cfg = self.get_repo().config
        return cfg.default_remote if cfg.remotes else None

    # --- output ----------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        repo = self.get_repo()
        name = _output_lock_name(context)
        meta_in = context.output_metadata or {}
        # One shared hold from the first object to the lock naming it: gc (which
        # takes the hold exclusively) can never collect an object in between.
        with repo.writing():
            if isinstance(obj, CacheHit):
                parts, outputs, hit = obj.parts, self._restore(repo, obj.lock, name), True
                cacheable = True
            else:
                parts = _parts_from_metadata(meta_in)
                cacheable = parts is not None
                parts = parts or self._plain_parts(context, repo)
                handler = formats.choose(obj, self._forced_format(context))
                outputs = [results.store_value(repo, obj, handler, context.name)]
                hit = False
            lock = Lock.build(name, parts, outputs)
            results.record(repo, lock, run_cache=cacheable)
        self._write_through(context, repo, lock, cacheable)
        out = outputs[0]
        context.add_output_metadata(_metadata(repo, lock, out, hit, meta_in))
        _set_data_version(context, out.hash)
        context.log.info(
            f"pivot: {'cache hit' if hit else 'stored'} {name} -> {out.hash} ({out.format})"
        )

    def _write_through(
        self, context: OutputContext, repo: Repo, lock: Lock, cacheable: bool
    ) -> None:
        """push_on_write / remote_first: the result goes to the remote before the step ends."""
        if self.remote_first:
            remote = remote_first.require_remote(self.remote_name())
            remote_first.push_or_raise(repo, remote, lock, run_cache=cacheable)
            context.log.info(f"pivot: pushed {lock.name} to {remote!r} (remote-first)")
        elif self.push_on_write and self.remote_name() is not None:
            remote = self.remote_name()
            try:
                failures = remote_first.push_result(
                    repo, remote, lock, run_cache=cacheable, latest=False
                )
            except PivotError as e:
                failures = [str(e)]
            if failures:
                context.log.warning(f"pivot: push of {lock.name} failed: {failures[0]}")
            else:
                context.log.info(f"pivot: pushed {lock.name} to {remote!r}")

    def _restore(self, repo: Repo, stored: Lock, name: str) -> list[OutputRecord]:
        outs = list(stored.outputs)
        for out in outs:
            results.ensure_present(repo, out, owner=name, remote=self._pull_remote())
            if out.path is not None:
                results.load_output(repo, out)  # checks a Path output out again
        return outs

    def _forced_format(self, context: OutputContext) -> str | None:
        forced = (context.definition_metadata or {}).get(FORMAT_KEY)
        if forced is None and context.has_asset_key:
            forced = self.formats.get(context.asset_key.to_user_string())
        return _raw(forced)

    def _plain_parts(self, context: OutputContext, repo: Repo) -> FingerprintParts:
        """Parts for an asset without `cached`: recorded for provenance, never used to skip."""
        spec_cv = None
        try:
            spec_cv = context.asset_spec.code_version if context.has_asset_key else None
        except Exception:
            spec_cv = None
        params = None
        try:
            params = context.step_context.op_config
        except Exception:
            params = None
        return fingerprint.build_parts(
            code_version=spec_cv or f"run-{context.run_id}",
            params=params,
            deps={},
            partition=_partition(context),
        )

    # --- input -----------------------------------------------------------------
    def load_input(self, context: InputContext) -> Any:
        if isinstance(context.dagster_type, PivotType):
            return Deferred(lambda: self._load(context))
        return self._load(context)

    def _load(self, context: InputContext) -> Any:
        repo = self.get_repo()
        typ = context.dagster_type.typing_type if context.dagster_type else None
        if not context.has_asset_key or not context.has_asset_partitions:
            return self._load_one(context, repo, _input_lock_name(context, None), typ)
        pkeys = list(context.asset_partition_keys)
        if not pkeys:
            return None
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        if len(pkeys) == 1:
            return self._load_one(context, repo, _input_lock_name(context, pkeys[0]), typ)
        values = {}
        for pk in pkeys:
            try:
                values[pk] = self._load_one(context, repo, _input_lock_name(context, pk), None)
            except MissingUpstream:
                if not allow_missing:
                    raise
                context.log.warning(f"pivot: partition {pk} of {context.asset_key} is missing")
        return values

    def _load_one(self, context: InputContext, repo: Repo, name: str, typ: Any) -> Any:
        lock = repo.read_lock(name)
        if lock is None and self.remote_first:
            lock = self.upstream_fallback(_instance(context))(name)
        if lock is None:
            raise MissingUpstream(
                f"no pivot lock for upstream {name!r}",
                "materialize that asset (with PivotIOManager) before its downstream",
            )
        out_name = context.upstream_output.name if context.upstream_output else "result"
        out = lock.output(out_name) if len(lock.outputs) > 1 else lock.outputs[0]
        fetched = results.ensure_present(repo, out, owner=name, remote=self._pull_remote())
        if fetched and out.format == "pickle" and not self.trust_remote_pickle:
            raise UntrustedPickle(
                f"{name!r} is a pickle fetched from remote {self.remote_name()!r}",
                "loading it could run code; set trust_remote_pickle=True if you trust the remote",
            )
        return results.load_output(repo, out, typ)

    def _pull_remote(self) -> str | None:
        return self.remote_name() if self.pull_missing else None


# --- helpers (pure over contexts) ------------------------------------------------
def _partition(context: OutputContext) -> Any:
    if not context.has_asset_partitions:
        return None
    pkeys = list(context.asset_partition_keys)
    if len(pkeys) != 1:
        raise PivotError(
            f"{context.asset_key.to_user_string()}: one output covers {len(pkeys)} partitions",
            "launch backfills with a multi-run backfill policy (one run per partition)",
        )
    return pkeys[0]


def _output_lock_name(context: OutputContext) -> str:
    if not context.has_asset_key:
        return asset_keys.lock_name(["_ops", context.step_key, context.name])
    return asset_keys.lock_name(context.asset_key, _partition(context))


def _input_lock_name(context: InputContext, partition: Any) -> str:
    if not context.has_asset_key:
        up = context.upstream_output
        return asset_keys.lock_name(["_ops", up.step_key, up.name])
    return asset_keys.lock_name(context.asset_key, partition)


def _instance(context: InputContext) -> Any:
    try:
        return context.instance
    except Exception:  # a built context in a unit test has none
        return None


def _raw(value: Any) -> Any:
    return getattr(value, "value", value)


def _parts_from_metadata(meta: Any) -> FingerprintParts | None:
    raw = _raw(meta.get(PARTS_KEY)) if meta else None
    if raw is None:
        return None
    return FingerprintParts.from_data(json.loads(raw) if isinstance(raw, str) else raw)


def _metadata(repo: Repo, lock: Lock, out: OutputRecord, hit: bool, given: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "pivot/hash": out.hash,
        "pivot/size": out.size,
        "pivot/path": MetadataValue.path(str(results.object_path(repo, out))),
        "pivot/format": out.format or "",
        "pivot/fingerprint": lock.fingerprint,
        "pivot/cache_hit": hit,
    }
    return {k: v for k, v in meta.items() if k not in given}


def _set_data_version(context: OutputContext, content_hash: str) -> None:
    """Make the content hash the materialization's data version (internal Dagster path, guarded)."""
    if not context.has_asset_key:
        return
    try:
        context.step_context.set_data_version(context.asset_key, DataVersion(content_hash))
    except Exception as e:  # built contexts in unit tests have no step context
        context.log.debug(f"pivot: could not set data version: {e}")
