"""The sensors' walks: over the instance's materializations (push) and the asset graph (pull).

`sensors` holds the thin Dagster factories; these functions are public too
(`pivot_dagster.push_new_materializations`, `pivot_dagster.pull_matching`) for
scripts and benches that push or pull outside a sensor.

`push_new_materializations` walks the instance's materializations after a
cursor (one storage id per asset key), finds the lock each one recorded
(`pivot/fingerprint` + `pivot/hash`: the current lock, or the local run-cache
when a newer run has replaced it), and pushes objects then run-cache entries.
The cursor of an asset key stops before its first failed record, so a failed
push is retried on the next call and never lost; what is already on the
remote is skipped by `transfer.push`, so a retry pushes nothing twice.

`pull_matching` asks, in topological order, what this deployment would compute
now (`fingerprint.asset_parts` outside a run: the same parts as `cached`,
resources' config, file deps and non-pivot upstreams' data versions included
through `inputs.extra_parts`; an asset whose resources' config this process
cannot resolve is not pulled), and
takes a matching result from the local or remote run-cache: objects fetched
and hash-checked, lock and run-cache entry written, and an
`AssetMaterialization` returned with the content hash as data version. An
asset whose local lock already has that fingerprint is not reported again, so
a deployment never re-reports what it pushed itself; an upstream pulled early
in the walk makes its downstream's fingerprint computable in the same call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NamedTuple

from dagster import AssetKey, AssetMaterialization, AssetRecordsFilter

from pivot_dagster import asset_keys, explain, fingerprint, formats, handoff, inputs
from pivot_dagster.engine import LOCK_SOURCE, Engine
from pivot_dagster.remote_first import resolver
from pivot_dagster.resource_config import ResourceConfigError
from pivot_store import runcache
from pivot_store.errors import PivotError
from pivot_store.lockfile import Lock
from pivot_store.repo import Repo

log = logging.getLogger("pivot")
PAGE = 500


class PushOutcome(NamedTuple):
    pushed: list[str]  # lock names now on the remote (objects + entry)
    failed: dict[str, str]  # lock name -> why; retried next time
    cursor: dict[str, int]  # asset key (user string) -> last storage id handled


def push_new_materializations(
    instance: Any,
    repo: Repo,
    remote: str,
    cursor: dict[str, int] | None = None,
    asset_keys_: Iterable[AssetKey] | None = None,
    verify_remote_every: timedelta | None = None,
) -> PushOutcome:
    """Push what pivot stored for every materialization after `cursor`; see the module doc.

    `verify_remote_every`: a push made when the remote's known index was last
    verified longer ago than this (or never) checks the remote itself
    (`push(verify_remote=True)`), so objects deleted behind pivot's back are
    sent again; None never does.
    """
    engine = Engine(repo, remote=remote)
    every = verify_remote_every.total_seconds() if verify_remote_every is not None else None
    cursor = dict(cursor or {})
    keys_ = list(asset_keys_) if asset_keys_ is not None else list(instance.get_asset_keys())
    todo: list[tuple[str, int, Lock | None, bool]] = []  # (key, storage id, lock, cacheable)
    for key in keys_:
        k = key.to_user_string()
        flt = AssetRecordsFilter(asset_key=key, after_storage_id=cursor.get(k))
        for rec in instance.fetch_materializations(flt, limit=PAGE, ascending=True).records:
            m = rec.asset_materialization
            found = handoff.recorded(m.metadata)
            lock, cacheable = None, False
            # Not pivot's, or pulled from a remote (already there): nothing to push.
            if found is not None and not handoff.value_of(m.metadata.get(handoff.SOURCE_KEY)):
                name = asset_keys.lock_name(key, m.partition)
                lock, cacheable = engine.recorded_lock(name, *found)
                if lock is None:
                    log.info("pivot: %s %s is no longer stored here; not pushed", k, found[1])
            todo.append((k, rec.storage_id, lock, cacheable))
    failed: dict[str, str] = {}
    pushed: set[str] = set()
    for cacheable in (True, False):
        locks = list({lk.to_yaml(): lk for _, _, lk, c in todo if lk and c == cacheable}.values())
        if not locks:
            continue
        try:
            res = engine.push(locks, run_cache=cacheable, verify_every=every)
        except PivotError as e:  # the remote cannot be used at all
            failed.update({lk.name: str(e) for lk in locks})
            continue
        bad = {lk.name: _why(res.failed, lk) for lk in locks if lk.name not in res.complete_locks}
        bad |= {
            lk.name: res.failed[e]
            for lk in locks
            if (e := runcache.entry_rel(lk)) in res.failed and lk.name not in bad
        }
        failed.update(bad)
        pushed |= {lk.name for lk in locks if lk.name not in bad}
    new_cursor = dict(cursor)
    blocked: set[str] = set()
    for k, storage_id, lock, _ in todo:
        if k in blocked:
            continue
        if lock is not None and lock.name in failed:
            blocked.add(k)
            continue
        new_cursor[k] = storage_id
    return PushOutcome(sorted(pushed - set(failed)), failed, new_cursor)


def _why(failed: dict[str, str], lock: Lock) -> str:
    oids = {o.hash for o in lock.outputs}
    for k, v in sorted(failed.items()):
        if k in oids:
            return f"{k}: {v}"
    return "; ".join(f"{k}: {v}" for k, v in sorted(failed.items())[:2]) or "incomplete"


# --- pull ---------------------------------------------------------------------------
def default_params(assets_def: Any) -> tuple[bool, Any]:
    """(ok, op config) a run with no run config would get; ok False if config is required."""
    from dagster._config import process_config

    field = assets_def.op.config_field
    if field is None:
        return True, None
    res = process_config(field.config_type, {})
    return (True, res.value) if res.success else (False, None)


@contextmanager
def _partition_context(instance: Any) -> Iterator[None]:
    """Dynamic partitions are read through Dagster's partition-loading context."""
    try:
        from dagster._core.definitions.partitions.context import partition_loading_context
    except ImportError:  # pragma: no cover - other Dagster versions
        yield
        return
    with partition_loading_context(dynamic_partitions_store=instance):
        yield


def _partitions(assets_def: Any, instance: Any) -> list[Any]:
    pdef = assets_def.partitions_def
    if pdef is None:
        return [None]
    return list(pdef.get_partition_keys(dynamic_partitions_store=instance))


def repository_def(defs: Any) -> Any:
    """A RepositoryDefinition from Definitions (or one given as it is)."""
    return defs.get_repository_def() if hasattr(defs, "get_repository_def") else defs


def pull_matching(
    defs: Any,
    repo: Repo,
    remote: str | None,
    *,
    instance: Any = None,
    selection: Iterable[AssetKey] | None = None,
    trust_remote_pickle: bool = False,
    remote_first: bool = False,
) -> list[AssetMaterialization]:
    """Pull results matching this deployment's fingerprints; the events to record (see doc).

    `remote_first`: upstream values as the instance records them (a local lock is
    used only when it agrees), as the steps of such a deployment see them; a stale
    local lock must not make an old result look current.
    """
    rdef = repository_def(defs)
    graph = rdef.asset_graph
    wanted = set(selection) if selection is not None else None
    engine = Engine(repo, remote=remote, trust_remote_pickle=trust_remote_pickle)
    extra_resolve = {"resolve": resolver(engine, instance)} if remote_first else {}
    events: list[AssetMaterialization] = []
    with _partition_context(instance):
        for key in graph.toposorted_asset_keys:
            if wanted is not None and key not in wanted:
                continue
            ad = rdef.assets_defs_by_key.get(key)
            fn = fingerprint.pivot_function(ad) if ad is not None else None
            if fn is None or len(ad.keys) != 1:
                continue
            cv, code, ok, params = outside_inputs(ad, key, fn)
            if cv is None or not ok:
                continue
            try:
                extra = inputs.extra_parts(
                    repo,
                    ad,
                    inputs.declared(fn),
                    asset_graph=graph,
                    resource_defs=rdef.get_top_level_resources(),
                    run_resources=None,
                    instance=instance,
                )
            except ResourceConfigError as e:
                log.info("pivot: %s not pulled: its resources' config: %s", key, e)
                continue
            extra = {**extra, **extra_resolve}
            for pk in _partitions(ad, instance):
                max_age = getattr(fn, "__pivot_max_age__", None)
                ev = _pull_one(graph, ad, key, pk, cv, params, engine, code, extra, max_age)
                if ev is not None:
                    events.append(ev)
    return events


def outside_inputs(ad: Any, key: AssetKey, fn: Any) -> tuple[str | None, dict[str, str], bool, Any]:
    """(code version, code map, ok, params) of a `cached` asset outside a run: the
    params are the defaults with `cached(exclude=...)` applied; ok is False when
    config is required. The code rule is `cached`'s own (`fingerprint.resolve_code`)."""
    cv, code = fingerprint.resolve_code(
        ad,
        key,
        fn.__pivot_code_version__,
        getattr(fn, "__pivot_explicit__", False),
        getattr(fn, "__pivot_code__", {}),
    )
    ok, params = default_params(ad)
    if ok:
        params = fingerprint.without_keys(params, getattr(fn, "__pivot_exclude__", ()))
    return cv, code, ok, params


def outside_parts(
    graph: Any,
    ad: Any,
    key: AssetKey,
    partition: Any,
    cv: str,
    params: Any,
    repo: Repo,
    code: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The parts a run would compute now for one partition, asked of the asset graph."""

    def partitions_for(_input: str, up_key: AssetKey) -> list[Any] | None:
        if graph.get(up_key).partitions_def is None:
            return None
        res = graph.get_parent_partition_keys_for_child(partition, up_key, key)
        return sorted(res.partitions_subset.get_partition_keys())

    return fingerprint.asset_parts(
        repo,
        ad,
        key,
        code_version=cv,
        code=code or {},
        params=params,
        partition=partition,
        partitions_for=partitions_for,
        **(extra or {}),
    )


def _pull_one(
    graph: Any,
    ad: Any,
    key: AssetKey,
    partition: Any,
    cv: str,
    params: Any,
    engine: Engine,
    code: dict[str, str],
    extra: dict[str, Any],
    max_age: timedelta | None = None,
) -> AssetMaterialization | None:
    parts = outside_parts(graph, ad, key, partition, cv, params, engine.repo, code, extra)
    if fingerprint.has_missing(parts):
        return None
    name = asset_keys.lock_name(key, partition)
    try:
        expected = formats.expect.for_asset(ad, key)
        too_old = lambda lk: explain.expiry(lk.origin, max_age)  # noqa: E731
        found = engine.find_result(name, parts, expected, too_old)
    except PivotError as e:
        log.warning("pivot: pull of %s from %s failed: %s", name, engine.remote, e)
        return None
    if found is None or found.source == LOCK_SOURCE:
        return None  # nothing here, or this deployment has it (maybe it pushed it)
    if explain.expiry(found.lock.origin, max_age) is not None:
        return None  # too old for `cached(max_age=...)`: a run would recompute it
    with engine.repo.writing():
        engine.record(found.lock)
    engine.restore(found.lock, name)  # a Path output is checked out, as on a hit
    out = found.lock.outputs[0]
    path = engine.object_path(out)
    label = f"remote run-cache {found.source}"
    meta = handoff.event_metadata(
        found.lock, out, path, hit=True, source=found.source, found_in=label
    )
    return AssetMaterialization(
        asset_key=key,
        partition=asset_keys.partition_str(partition),
        metadata=meta,
        tags={"dagster/data_version": out.hash, "dagster/code_version": cv},
    )
