"""The fingerprint of one asset (partition): what decides whether a result can be reused.

Built from plain values (a code version, the resolved op config, the partition
key, and the upstream content hashes read from pivot's own locks), so it is
the same in every process and on a brand-new Dagster instance. The digest is
`FingerprintParts.digest(lock name)`: the lock name (asset key + partition) is
part of it, so two assets with equal code and inputs never share results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pivot_dagster import asset_keys
from pivot_store.lockfile import FingerprintParts, Lock
from pivot_store.repo import Repo

MISSING_DEP = "missing"  # a dep value: "missing", or "missing: <why>" (see `missing_reasons`)
# The upstream locks a fingerprint was computed from, by (repo root, lock name).
UpstreamLocks = dict[tuple[Path, str], Lock]
# (upstream key, partition, read the local lock) -> its value when it is not pivot's, else
# None; it may call the reader (at most one read happens) to compare the lock with the
# instance's record.
UpstreamSource = Callable[[Any, Any, Callable[[], Lock | None]], str | None]


def jsonable_params(config: Any) -> dict[str, Any]:
    """Op config as plain JSON (Dagster may hand back enums, tuples or frozendicts)."""
    if config is None:
        return {}
    data = json.loads(json.dumps(config, sort_keys=True, default=str))
    return data if isinstance(data, dict) else {"value": data}


def without_keys(config: Any, exclude: Iterable[str]) -> dict[str, Any]:
    """Op config as plain JSON without the `exclude`d keys (`a.b` names a nested key).

    `cached(exclude=[...])`: a change to an excluded key then reuses results
    computed with another value, so exclude only what cannot change the value
    (a log level, a worker count).
    """
    data = jsonable_params(config)
    for dotted in exclude:
        *path, last = dotted.split(".")
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def dep_hashes(
    repo: Repo,
    deps: Iterable[tuple[Any, Any]],
    resolve: Callable[[str, Lock | None], Lock | None] | None = None,
    seen: UpstreamLocks | None = None,
    source: UpstreamSource | None = None,
) -> dict[str, str]:
    """`{upstream lock name: content hash}` for (asset key, partition key) pairs.

    An upstream with no lock counts as "missing": the fingerprint then matches
    nothing stored before the upstream existed, so the body runs. `resolve`
    (remote-first mode: `remote_first.resolver`) judges the local lock against the
    instance, the authority, and may replace it or find one elsewhere.
    Each lock read is added to `seen` by (repo root, name), so the step loads
    exactly the upstream values the fingerprint names without parsing their
    locks again (and an input read from another project never gets them).
    `source(key, partition, local)` (see `upstream_versions`) gives the value of an
    upstream that is not pivot's (its Dagster data version), or None to read
    the lock; `local()` is that read, done once whoever asks first.
    """
    out: dict[str, str] = {}
    for key, partition in deps:
        name = asset_keys.lock_name(key, partition)
        local = _read_once(repo, name)
        other = source(key, partition, local) if source is not None else None
        if other is not None:
            out[name] = other
            continue
        lock = local()
        if resolve is not None:
            lock = resolve(name, lock)
        if lock is None:
            out[name] = MISSING_DEP
        else:
            out[name] = ",".join(o.hash for o in lock.outputs)
            if seen is not None:
                seen[(repo.root, name)] = lock
    return out


def _read_once(repo: Repo, name: str) -> Callable[[], Lock | None]:
    """`repo.read_lock(name)`, read on the first call and remembered."""
    got: list[Lock | None] = []

    def read() -> Lock | None:
        if not got:
            got.append(repo.read_lock(name))
        return got[0]

    return read


def build_parts(
    *,
    code_version: str | None,
    params: Any,
    deps: dict[str, str],
    partition: Any,
    code: Mapping[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> FingerprintParts:
    """`code`: {qualified name: hash} of what a derived code version covers (see
    `code_version.derive`); empty when the version was given (the user's promise)."""
    return FingerprintParts(
        code_version=code_version,
        code=dict(sorted((code or {}).items())),
        params=jsonable_params(params),
        deps=dict(sorted(deps.items())),
        partition=asset_keys.partition_str(partition),
        resources=dict(sorted((resources or {}).items())),
        files=dict(sorted((files or {}).items())),
    )


def _is_missing(value: str) -> bool:
    return value == MISSING_DEP or value.startswith(MISSING_DEP + ":")


def has_missing(parts: FingerprintParts) -> bool:
    """An input pivot cannot name (no lock, no data version, no file): never a hit."""
    return any(_is_missing(v) for v in (*parts.deps.values(), *parts.files.values()))


def missing_reasons(parts: FingerprintParts) -> list[str]:
    """Why `has_missing`, in words, for the run log and the materialization metadata."""
    out = []
    for where, values in (("upstream", parts.deps), ("file dep", parts.files)):
        for name, v in values.items():
            if v == MISSING_DEP:
                out.append(f"{where} `{name}` has no stored result: not cached")
            elif _is_missing(v):
                out.append(f"{v[len(MISSING_DEP) + 1 :].strip()}: not cached")
    return out


# --- shared by `cached` (inside a step) and the pull sensor (outside any run) ----
PartitionsFor = Callable[[str, Any], Sequence[Any] | None]


def pivot_function(assets_def: Any) -> Any:
    """The `cached` wrapper behind an AssetsDefinition, or None when the asset is not cached."""
    fn = getattr(getattr(assets_def.op, "compute_fn", None), "decorated_fn", None)
    return fn if hasattr(fn, "__pivot_code_version__") else None


def resolve_code_version(
    assets_def: Any, key: Any, derived: str | None, explicit: bool
) -> str | None:
    """`cached(code_version=...)` wins, then the asset's own code_version, then the source's."""
    if explicit:
        return derived
    return assets_def.code_versions_by_key.get(key) or derived


def resolve_code(
    assets_def: Any, key: Any, derived: str | None, explicit: bool, code: Mapping[str, str]
) -> tuple[str | None, dict[str, str]]:
    """The code version (as `resolve_code_version`) and the code map that goes with it:
    the map only when the derived version is the one used (`pivot_asset` hands it to
    Dagster), never beside an explicit one."""
    cv = resolve_code_version(assets_def, key, derived, explicit)
    return cv, (dict(code) if not explicit and cv is not None and cv == derived else {})


def upstream_pairs(assets_def: Any, key: Any, partitions_for: PartitionsFor) -> list[tuple]:
    """(upstream key, partition key or None) for every input and dep of `key`.

    `partitions_for(input name, upstream key)` gives the upstream partition keys
    this partition reads, or None for an unpartitioned upstream: a step asks its
    context, the pull sensor asks the asset graph, and both then agree.
    A self-dependency (a partition reading its own earlier partitions through a
    partition mapping) is an upstream like any other: day N's fingerprint
    names day N-1's content, so recomputing day N-1 makes day N a miss.
    """
    pairs: list[tuple] = []
    for input_name, up_key in assets_def.keys_by_input_name.items():
        pkeys = partitions_for(input_name, up_key)
        if pkeys is None:
            pairs.append((up_key, None))
        else:
            pairs += [(up_key, pk) for pk in pkeys]
    return pairs


def asset_parts(
    repo: Repo,
    assets_def: Any,
    key: Any,
    *,
    code_version: str,
    params: Any,
    partition: Any,
    partitions_for: PartitionsFor,
    resolve: Callable[[str, Lock | None], Lock | None] | None = None,
    seen: UpstreamLocks | None = None,
    code: Mapping[str, str] | None = None,
    source: UpstreamSource | None = None,
    resources: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> FingerprintParts:
    """The parts this deployment computes for one asset partition, from local locks
    (and, through `source`, the instance's data versions of non-pivot upstreams)."""
    pairs = upstream_pairs(assets_def, key, partitions_for)
    return build_parts(
        code_version=code_version,
        code=code,
        params=params,
        deps=dep_hashes(repo, pairs, resolve, seen, source),
        partition=partition,
        resources=resources,
        files=files,
    )
