"""`pivot why ASSET`: would a run reuse a stored result, and if not, why not. Runs nothing.

The fingerprint is computed outside a run the way the pull sensor computes it
(`instance_walk.outside_inputs` / `outside_parts`: the asset graph, the local
locks, the config's defaults), then the decision is `explain.decide`, the one
`cached` makes in a step, over the local results only: nothing is fetched,
nothing written. What cannot be known outside a run (a run's own run config, a
`pivot/refresh` tag) is said, not guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey

from pivot_dagster import asset_keys, explain, fingerprint, formats, inputs, instance_walk
from pivot_dagster.engine import Engine
from pivot_dagster.resource_config import ResourceConfigError
from pivot_dagster.sensors import _as_pivot
from pivot_store.errors import NotAProject, PivotError
from pivot_store.repo import Repo


class UnknownAsset(PivotError):
    """`pivot why` was asked about an asset the definitions do not have, or badly."""


def report(defs: Any, asset: str, partition: str | None = None, instance: Any = None) -> list[str]:
    """The lines `pivot why` prints: the verdict, then one line per cause or note."""
    rdef = instance_walk.repository_def(defs)
    key = AssetKey.from_user_string(asset)
    ad = rdef.assets_defs_by_key.get(key)
    if ad is None:
        raise UnknownAsset(f"no asset {asset!r} in the definitions", "check the key (a/b)")
    fn = fingerprint.pivot_function(ad)
    if fn is not None and len(ad.keys) != 1:  # multi_asset: cached, not explained here yet
        return [f"{asset}: an output of a cached multi_asset; `pivot why` explains single assets"]
    if fn is None:
        return [
            f"{asset}: not cached by pivot (no `cached` on a single asset): every run computes it"
        ]
    io = _as_pivot(rdef.get_top_level_resources().get(ad.get_io_manager_key_for_asset_key(key)))
    if io is None:
        return [f"{asset}: its IO manager is not PivotIOManager: every run computes it"]
    partition = _check_partition(ad, asset, partition, instance)
    cv, code, ok, params = instance_walk.outside_inputs(ad, key, fn)
    if cv is None:
        return [f"{asset}: no code version and no source to derive one: every run computes it"]
    if not ok:
        return [
            f"{asset}: cannot tell: it requires run config, which is not known outside a run",
        ]
    notes = []
    if ad.op.config_field is not None:
        notes.append("note: config is the asset's defaults; a run's own run config may differ")
    notes.append(f"note: a run tagged {explain.REFRESH_TAG} recomputes it whatever this says")
    try:
        repo = Repo.open(Path(io.project_dir).resolve(), create=False)
    except NotAProject:
        return [f"{asset}: cache miss: a run would compute it", "  no earlier result", *notes]
    engine = Engine(repo, remote=None, pull_missing=False)  # local only: fetch nothing
    try:  # the resources, file deps and non-pivot upstreams a run would see
        extra = inputs.extra_parts(
            repo,
            ad,
            inputs.declared(fn),
            asset_graph=rdef.asset_graph,
            resource_defs=rdef.get_top_level_resources(),
            run_resources=None,
            instance=instance,
        )
    except ResourceConfigError as e:
        return [f"{asset}: cannot tell: its resources' config is not known here ({e})", *notes]
    with instance_walk._partition_context(instance):
        parts = instance_walk.outside_parts(
            rdef.asset_graph, ad, key, partition, cv, params, repo, code, extra
        )
    name = asset_keys.lock_name(key, partition)
    expected = formats.expect.for_asset(ad, key, io.formats)
    found, causes = explain.decide(
        engine, name, parts, expected, max_age=getattr(fn, "__pivot_max_age__", None)
    )
    label = f"{asset}" + (f" [{partition}]" if partition is not None else "")
    if found is not None:
        where = explain.source_label(found.source)
        return [f"{label}: cache hit {explain.hit_line(where, found.lock.origin)}", *notes]
    remote = io.remote or (repo.config.default_remote if repo.config.remotes else None)
    if remote is not None and io.pull_missing and not fingerprint.has_missing(parts):
        on_remote, note = _remote_hit(repo, remote, name, parts.digest(name), fn)
        if on_remote is not None:
            head = f"{label}: cache hit from the remote, if its objects arrive and pass the checks"
            return [head, f"  {on_remote}", *(f"  not here: {c}" for c in causes), *notes]
        notes.insert(0, note)
    return [f"{label}: cache miss: a run would compute it", *(f"  {c}" for c in causes), *notes]


def _check_partition(ad: Any, asset: str, partition: str | None, instance: Any) -> str | None:
    pdef = ad.partitions_def
    if pdef is None:
        if partition is not None:
            raise UnknownAsset(f"{asset!r} is not partitioned", "leave out --partition")
        return None
    if partition is None:
        raise UnknownAsset(f"{asset!r} is partitioned", "pass --partition KEY")
    with instance_walk._partition_context(instance):
        known = pdef.has_partition_key(partition)
    if not known:
        raise UnknownAsset(f"{asset!r} has no partition {partition!r}", "check the key")
    return partition


def _remote_hit(repo: Repo, remote: str, name: str, fp: str, fn: Any) -> tuple[str | None, str]:
    """(the remote run-cache's newest fresh entry for the fingerprint in words, or None;
    a note otherwise). Entries are read, never fetched: a run still checks their objects
    and format before using one."""
    try:
        entries = Engine(repo, remote=remote).remote_entries(name, fp)
    except PivotError as e:
        return None, f"note: remote {remote} could not be asked ({e}); a run would try it"
    max_age = getattr(fn, "__pivot_max_age__", None)
    for entry in entries:
        if explain.expiry(entry.lock.origin, max_age) is None:
            return explain.hit_line(f"remote run-cache {remote}", entry.lock.origin), ""
    return None, f"note: remote {remote} has no usable result for this fingerprint"
