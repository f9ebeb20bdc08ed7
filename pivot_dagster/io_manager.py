"""PivotIOManager: Dagster's IO manager face over a pivot Repo.

A shell on purpose: it reads Dagster's contexts (names, partitions, metadata)
and delegates to one `engine.Engine` built per process, as dagster-aws builds
its `inner_io_manager`; naming is `asset_keys`, formats are `formats`, what
reaches the remote when is `remote_first`, and the metadata it writes is
`handoff`'s. It follows `UPathIOManager`'s partition rules (one partition per
output, or a dict by partition key for a range run: `ranges`; a downstream
reading several upstream partitions gets a dict by partition key;
`allow_missing_partitions` input metadata skips absent ones) so users can
swap it in without changing assets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManager,
    DataVersion,
    InputContext,
    OutputContext,
)
from dagster._core.execution.plan.outputs import StepOutputHandle
from pydantic import Field, PrivateAttr

from pivot_dagster import (
    asset_keys,
    explain,
    fingerprint,
    flights,
    formats,
    handoff,
    ranges,
    remote_first,
)
from pivot_dagster.engine import Engine, MissingUpstream, UntrustedPickle
from pivot_dagster.handoff import CacheHit, Deferred, PivotType
from pivot_dagster.range_values import store as store_range_values
from pivot_store.config import remote_from
from pivot_store.errors import PivotError
from pivot_store.lockfile import FingerprintParts, Lock
from pivot_store.repo import Repo

__all__ = ["MissingUpstream", "PivotIOManager", "UntrustedPickle"]

#: The name of the remote given by `remote_url` when `remote` names none.
URL_REMOTE_NAME = "io_manager"


class PivotIOManager(ConfigurableIOManager):
    """Stores every output by content hash in `<project_dir>/.pivot` and records it in a lock."""

    project_dir: str = Field(default=".", description="Project folder holding `.pivot/`.")
    remote: str | None = Field(
        default=None, description="Remote name from .pivot/config.yaml for pulls and run-cache."
    )
    remote_url: str | None = Field(
        default=None,
        description="A remote by URL (s3://bucket/prefix) for a worker without "
        ".pivot/config.yaml; named `remote` (default 'io_manager'). Also PIVOT_REMOTE_URL.",
    )
    remote_endpoint_url: str | None = Field(
        default=None, description="With remote_url: an S3-compatible endpoint."
    )
    remote_region: str | None = Field(default=None, description="With remote_url: the region.")
    remote_profile: str | None = Field(
        default=None, description="With remote_url: the AWS profile for credentials."
    )
    checkout_mode: str | None = Field(
        default=None,
        description="Path outputs are private copies (the next run may rewrite them in "
        "place); `reflink` makes them copy-on-write clones where the filesystem can.",
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
    single_flight_timeout_s: float = Field(
        default=3600.0,
        description="How long a `cached` step waits for another process on this machine that "
        "is computing the same fingerprint (then it hits) before computing it too.",
    )
    remote_first: bool = Field(
        default=False,
        description="For executors that isolate steps: every output is on the remote before "
        "the step ends (or the step fails), and an upstream's value is the one the instance "
        "records: a local lock is used only when it agrees, else it is resolved from the "
        "remote (see pivot_dagster.remote_first).",
    )

    _engine: Engine | None = PrivateAttr(default=None)

    # --- wiring ----------------------------------------------------------------
    def engine(self) -> Engine:
        """The result engine, built once per process (each multiprocess step builds its own)."""
        if self._engine is None:
            repo = Repo.open(Path(self.project_dir).resolve(), create=True)
            remote = self.remote
            given = remote_from(
                self.remote_url,
                endpoint_url=self.remote_endpoint_url,
                region=self.remote_region,
                profile=self.remote_profile,
            )
            if given is not None:
                remote = remote or URL_REMOTE_NAME
                repo.use_remote(remote, given)
            elif not remote:
                remote = repo.config.default_remote if repo.config.remotes else None
            self._engine = Engine(
                repo,
                remote=remote,
                pull_missing=self.pull_missing,
                trust_remote_pickle=self.trust_remote_pickle,
                checkout_mode=self.checkout_mode,
            )
        return self._engine

    def get_repo(self) -> Repo:
        """The Repo, opened once per process."""
        return self.engine().repo

    def remote_name(self) -> str | None:
        """`remote`, else the project's default remote (None without remotes)."""
        return self.engine().remote

    def upstream_resolver(self, instance: Any = None) -> Any:
        """In remote-first mode, which upstream lock is current (the instance decides,
        a local lock is used only when it agrees); else None (the local lock is)."""
        if not self.remote_first:
            return None
        return remote_first.resolver(self.engine(), instance)

    # --- output ----------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            store_range_values(self, context, obj) or self._handle_range(context, obj)
            return
        engine = self.engine()
        name = _output_lock_name(context)
        given = context.output_metadata or {}
        found_in = None
        if isinstance(obj, CacheHit):
            lock, hit, cacheable = engine.save_hit(name, obj.lock, obj.parts), True, True
            found_in = explain.source_label(obj.source)
        else:
            parts = handoff.parts_from_metadata(given)
            cacheable, hit = parts is not None, False
            parts = parts or self._plain_parts(context)
            origin = handoff.origin_for(_or_none(lambda: context.run_id), given)
            try:
                handler = formats.choose(obj, self._forced_format(context))
                lock = engine.save_computed(
                    name, parts, obj, handler, context.name, run_cache=cacheable, origin=origin
                )
            finally:  # the lock is written (or never will be): others may look now
                flights.release(engine.repo, name)
        self._write_through(engine, lock, cacheable, context)
        out = lock.outputs[0]
        if hit:
            _capture_stored_value(context, engine, out, name)
        path = engine.object_path(out)
        meta = handoff.event_metadata(lock, out, path, hit=hit, found_in=found_in, given=given)
        context.add_output_metadata(meta)
        _set_data_version(context, out.hash)
        if not cacheable:  # `cached` logged its hit or miss; the metadata has the rest
            context.log.info(f"pivot: stored {name} -> {out.hash} ({out.format})")

    def _handle_range(self, context: OutputContext, obj: Any) -> None:
        """One output for several partitions: `ranges.store_range`, one lock each."""
        ranges.store_range(
            self.engine(),
            context,
            obj,
            run_id=_or_none(lambda: context.run_id),
            plain_parts=lambda pk: self._plain_parts(context, pk),
            forced_format=self._forced_format(context),
            write_through=lambda lock: self._write_through(self.engine(), lock, False, context),
        )

    def _write_through(
        self, engine: Engine, lock: Lock, cacheable: bool, context: OutputContext
    ) -> None:
        """What reaches the remote now (remote-first, push_on_write): `remote_first`'s call."""
        remote_first.write_through(
            engine,
            lock,
            cacheable=cacheable,
            remote_first=self.remote_first,
            push_on_write=self.push_on_write,
            step_log=context.log,
        )

    def _forced_format(self, context: OutputContext) -> str | None:
        forced = (context.definition_metadata or {}).get(handoff.FORMAT_KEY)
        if forced is None and context.has_asset_key:
            forced = self.formats.get(context.asset_key.to_user_string())
        return handoff.value_of(forced)

    def _plain_parts(self, context: OutputContext, partition: Any = None) -> FingerprintParts:
        """Parts for an asset without `cached`: recorded for provenance, never used to skip."""
        spec = _or_none(lambda: context.asset_spec) if context.has_asset_key else None
        spec_cv = getattr(spec, "code_version", None)
        return fingerprint.build_parts(
            code_version=spec_cv or f"run-{context.run_id}",
            params=_or_none(lambda: context.step_context.op_config),
            deps={},
            partition=partition if partition is not None else _partition(context),
        )

    # --- input -----------------------------------------------------------------
    def load_input(self, context: InputContext) -> Any:
        if isinstance(_or_none(lambda: context.dagster_type), PivotType):
            return Deferred(lambda locks: self._load(context, locks))
        return self._load(context, {})

    def _load(self, context: InputContext, locks: Mapping[tuple[Path, str], Lock]) -> Any:
        """`locks`: upstream locks `cached` already read for the fingerprint (see Deferred)."""
        dagster_type = _or_none(lambda: context.dagster_type)
        typ = dagster_type.typing_type if dagster_type is not None else None
        if not context.has_asset_key or not context.has_asset_partitions:
            return self._load_one(context, _input_lock_name(context, None), typ, locks)
        pkeys = list(context.asset_partition_keys)
        if not pkeys:
            return None
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        if len(pkeys) == 1:
            try:
                return self._load_one(context, _input_lock_name(context, pkeys[0]), typ, locks)
            except MissingUpstream:
                if not allow_missing:
                    raise
                context.log.warning(
                    f"pivot: partition {pkeys[0]} of {context.asset_key} is missing"
                )
                return None  # as UPathIOManager does for one missing partition
        values = {}
        for pk in pkeys:
            try:
                values[pk] = self._load_one(context, _input_lock_name(context, pk), None, locks)
            except MissingUpstream:
                if not allow_missing:
                    raise
                context.log.warning(f"pivot: partition {pk} of {context.asset_key} is missing")
        return values

    def _load_one(
        self, context: InputContext, name: str, typ: Any, locks: Mapping[tuple[Path, str], Lock]
    ) -> Any:
        engine = self.engine()
        lock = locks.get((engine.repo.root, name))  # judged already by the fingerprint
        if lock is None:
            lock = engine.repo.read_lock(name)
            if self.remote_first:
                resolve = self.upstream_resolver(_or_none(lambda: context.instance))
                lock = resolve(name, lock)
        # A source asset's (or a built context's) upstream output has no name.
        out_name = _or_none(lambda: context.upstream_output.name) or "result"
        if self.remote_first and lock is not None:
            self._check_remote_upstream(context, name, lock, out_name)
        return engine.load_upstream(name, lock, out_name, typ)

    def _check_remote_upstream(
        self, context: InputContext, name: str, lock: Lock, out_name: str
    ) -> None:
        """Remote-first: an upstream whose objects came from the remote (its lock from a
        latest pointer or another step) only in a format it could have produced."""
        engine = self.engine()
        out = lock.output(out_name) if len(lock.outputs) > 1 else lock.outputs[0]
        engine.ensure_present(out, name, lock)
        if not any(engine.repo.objects.from_remote(o) for o in engine.repo.output_oids(out)):
            return  # made here
        expected = self._upstream_expected(context)
        if expected.returns_path is None and any(o.path is not None for o in lock.outputs):
            # Dagster types an upstream only in the run that executes it; a Path output
            # got here only at the path this instance recorded (`remote_first._resolve`).
            expected = dataclasses.replace(expected, returns_path=True)
        why = engine.refusal(lock, expected)
        if why is not None:  # issue 12 item 1: the remote's word is not taken
            raise PivotError(
                f"remote-first: the remote's result for {name!r} is refused: {why}",
                f"materialize {name!r} in this deployment",
            )

    def _upstream_expected(self, context: InputContext) -> formats.Expected:
        """What the upstream output could be: its forced format and annotated type."""
        up = context.upstream_output
        meta = (_or_none(lambda: up.definition_metadata) if up else None) or {}
        forced = meta.get(handoff.FORMAT_KEY)
        if forced is None and context.has_asset_key:
            forced = self.formats.get(context.asset_key.to_user_string())
        typ = _or_none(lambda: up.dagster_type.typing_type) if up else None
        returns = formats.expect.is_path_type(typ) if typ is not None else None
        return formats.Expected(forced=handoff.value_of(forced) or None, returns_path=returns)


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
        return _op_lock_name(context)
    return asset_keys.lock_name(context.asset_key, _partition(context))


def _input_lock_name(context: InputContext, partition: Any) -> str:
    if not context.has_asset_key:
        return _op_lock_name(context.upstream_output)
    return asset_keys.lock_name(context.asset_key, partition)


def _op_lock_name(output: OutputContext) -> str:
    """An op output's lock, per run as in Dagster's own IO managers: a re-execution
    reads its parent run's output (Dagster hands the parent's run id for a step it
    skips) and two runs of one job never read each other's. A `DynamicOut`'s
    mapping key is part of it, so mapped steps each get their own value."""
    step = _or_none(lambda: output.step_key)
    if step is None:  # a hand-built context (`build_output_context`) without a step
        return asset_keys.lock_name(["_ops", output.name])
    parts = ["_ops", _or_none(lambda: output.run_id) or "no-run", step, output.name]
    if output.mapping_key:
        parts.append(f"map-{output.mapping_key}")
    return asset_keys.lock_name(parts)


def _or_none(read: Callable[[], Any]) -> Any:
    """A context attribute, or None where the context has none (built contexts in unit tests)."""
    try:
        return read()
    except Exception:
        return None


def _capture_stored_value(context: OutputContext, engine: Engine, out: Any, name: str) -> None:
    """On a hit, put the stored value where Dagster kept the step's returned one.

    `materialize`/`execute_in_process` (`output_for_node`, `asset_value`) and
    hooks read the value the step returned, which on a hit is pivot's marker.
    Only those runs capture outputs, so only they pay for this load.
    """
    step = _or_none(lambda: context.step_context)
    captures = [
        c
        for c in (getattr(step, "output_capture", None), getattr(step, "step_output_capture", None))
        if c is not None
    ]
    if not captures:
        return
    handle = StepOutputHandle(context.step_key, context.name, context.mapping_key)
    if not any(handle in c for c in captures):
        return
    typ = getattr(context.dagster_type, "inner_annotation", None)
    value = engine.load(out, None if typ is Any else typ, owner=name)
    for c in captures:
        if handle in c:
            c[handle] = value


def _set_data_version(context: OutputContext, content_hash: str) -> None:
    """Make the content hash the materialization's data version (internal Dagster path, guarded)."""
    if not context.has_asset_key:
        return
    try:
        context.step_context.set_data_version(context.asset_key, DataVersion(content_hash))
    except Exception as e:  # built contexts in unit tests have no step context
        context.log.debug(f"pivot: could not set data version: {e}")
