"""What `cached` hands the IO manager, and what pivot writes into Dagster's events.

`CacheHit` replaces the value on a hit (the IO manager then writes only the
lock and metadata); `Deferred` replaces an input the IO manager has not read
yet (the body's wrapper reads it only on a miss). Dagster type-checks both
against the user's annotations, so `cached` swaps each annotation `T` for
`pivot_type(T)`: a `DagsterType` that accepts the marker or whatever `T`
accepts. One is made per `T` and reused, because Dagster refuses two types
with the same name.

On a miss the fingerprint parts travel as output metadata (`PARTS_KEY`), which
also works under the multiprocess executor. Every `pivot/...` metadata key is
named here, and `event_metadata` is the one builder of a materialization's
metadata, whether the value was computed, a cache hit, or pulled by a sensor:
the UI, the push sensor and remote-first mode read these keys back.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import DagsterType, MetadataValue, TypeCheck
from dagster._core.types.dagster_type import resolve_dagster_type

from pivot_dagster.fingerprint import missing_reasons
from pivot_store.lockfile import FingerprintParts, Lock, Origin, OutputRecord

# --- metadata keys -----------------------------------------------------------------
PARTS_KEY = "pivot/fingerprint_parts"  # cached -> IO manager, on the output
FORMAT_KEY = "pivot/format"  # also read from asset metadata to force a format
HASH_KEY = "pivot/hash"
SIZE_KEY = "pivot/size"
PATH_KEY = "pivot/path"
# A Path output: its own path inside the project, as the lock names it (remote-first
# holds a remote result for that upstream to this path: the instance is the authority).
WORKSPACE_PATH_KEY = "pivot/workspace_path"
FINGERPRINT_KEY = "pivot/fingerprint"
CACHE_HIT_KEY = "pivot/cache_hit"
SOURCE_KEY = "pivot/source"  # only on results a sensor pulled from elsewhere
# Explain (pivot_dagster.explain): why a miss ran, where a hit came from.
WHY_KEY = "pivot/why"  # a miss: one line per cause
DURATION_KEY = "pivot/duration_s"  # a miss: the body's wall time (cached -> IO manager)
# A multi_asset miss: when its body started (epoch seconds), the same on every output, so
# their locks' origins agree and name one computation (see `output_group`).
STARTED_KEY = "pivot/started_at"
FOUND_IN_KEY = "pivot/found_in"  # a hit: local lock / local run-cache / remote run-cache ...
COMPUTED_BY_KEY = "pivot/computed_by"  # the origin's deployment and run
COMPUTED_AT_KEY = "pivot/computed_at"  # the origin's time (UTC, ISO 8601)
SAVED_KEY = "pivot/saved_s"  # a hit: the compute time it saved (the origin's duration)
PARTITION_HASHES_KEY = "pivot/partition_hashes"  # a range run: {partition key: hash}
RANGE_PARTS_KEY = "pivot/range_parts"  # cached(range_values=True): {partition key: parts}
NOT_CACHED_KEY = "pivot/not_cached"  # why a result could not be cached (an unnamed input)
# Integrity checks (pivot_dagster.checks).
OBJECTS_CHECKED_KEY = "pivot/objects_checked"
LOCKS_CHECKED_KEY = "pivot/locks_checked"
CHECK_FINDING_KEYS = {
    "corrupt": "pivot/corrupt",
    "missing": "pivot/missing",
    "missing_on_remote": "pivot/missing_on_remote",
}


# --- markers -----------------------------------------------------------------------
@dataclass(frozen=True)
class CacheHit:
    """The stored result that matched this run's fingerprint."""

    lock: Lock
    parts: FingerprintParts
    source: str | None = None  # `Engine.find_result`'s source, for the event's metadata


@dataclass
class Deferred:
    """An input not yet deserialized; `resolve()` reads it once.

    `load` receives the upstream locks the fingerprint was computed from, by
    (repo root, lock name), so the value read is the one the fingerprint
    names, and each upstream lock is parsed once per step.
    """

    load: Callable[[Mapping[tuple[Path, str], Lock]], Any]
    _value: Any = field(default=None, repr=False)
    _done: bool = False

    def resolve(self, locks: Mapping[tuple[Path, str], Lock] | None = None) -> Any:
        if not self._done:
            self._value = self.load(locks or {})
            self._done = True
        return self._value


class RangeValues(dict):
    """A range run's result under `cached(range_values=True)`: `{partition key: value}`,
    a value being a `CacheHit` where that partition's stored result is reused.

    Its own type, so the output's type check checks each value as one partition's
    (see `PivotType`), and the IO manager (`range_values.store`) knows each comes with
    its own fingerprint parts (`RANGE_PARTS_KEY`)."""


class PivotType(DagsterType):
    """Accepts pivot's markers, otherwise checks like the wrapped annotation."""

    def __init__(self, inner: Any) -> None:
        self.inner_annotation = inner
        self.inner = resolve_dagster_type(inner)
        super().__init__(
            key=f"Pivot[{_type_name(inner)}]",
            name=f"Pivot[{_type_name(inner)}]",
            type_check_fn=self._check,
            typing_type=self.inner.typing_type,
            description=f"{self.inner.display_name}, or a pivot cache hit / deferred input",
        )

    def _check(self, context: Any, value: Any) -> TypeCheck | bool:
        if isinstance(value, CacheHit | Deferred):
            return True
        if isinstance(value, RangeValues):  # one value (or hit) per partition, each checked
            for v in value.values():
                check = self._check(context, v)
                if not (check if isinstance(check, bool) else check.success):
                    return check
            return True
        return self.inner.type_check(context, value)


_TYPES: dict[Any, PivotType] = {}
_LOCK = threading.Lock()


def pivot_type(annotation: Any) -> PivotType:
    with _LOCK:
        key = _type_name(annotation)
        if key not in _TYPES:
            _TYPES[key] = PivotType(annotation)
        return _TYPES[key]


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}"
    if isinstance(annotation, DagsterType):
        return f"dagster:{annotation.key}"
    return repr(annotation)


# --- fingerprint parts through metadata --------------------------------------------
def parts_to_json(parts: FingerprintParts) -> dict[str, Any]:
    return parts.to_data()


def parts_from_json(raw: Any) -> FingerprintParts:
    """Parts from their JSON (a dict, or its text once Dagster has serialized it)."""
    return FingerprintParts.from_data(json.loads(raw) if isinstance(raw, str) else raw)


def parts_metadata(parts: FingerprintParts) -> dict[str, Any]:
    """The output metadata `cached` attaches so `handle_output` knows the parts, and
    why the result cannot be reused when an input has no name pivot can record."""
    meta: dict[str, Any] = {PARTS_KEY: MetadataValue.json(parts_to_json(parts))}
    reasons = missing_reasons(parts)
    if reasons:
        meta[NOT_CACHED_KEY] = MetadataValue.text("; ".join(reasons))
    return meta


def parts_from_metadata(meta: Mapping[str, Any] | None) -> FingerprintParts | None:
    """The parts `cached` attached, or None for an output `cached` did not produce."""
    raw = value_of(meta.get(PARTS_KEY)) if meta else None
    return None if raw is None else parts_from_json(raw)


def miss_metadata(
    causes: list[str], duration_s: float, started_at: float | None = None
) -> dict[str, Any]:
    """What `cached` attaches on a miss: why it ran, and how long the body took
    (a multi_asset's outputs also when it started: `STARTED_KEY`)."""
    meta = {
        WHY_KEY: MetadataValue.text("\n".join(causes)),
        DURATION_KEY: MetadataValue.float(round(duration_s, 4)),
    }
    if started_at is not None:
        meta[STARTED_KEY] = MetadataValue.float(round(started_at, 3))
    return meta


def origin_for(run_id: str | None, meta: Mapping[str, Any] | None) -> Origin:
    """The origin of a result computed now: this run, this deployment, the body's time.

    `computed_at` is when the body started (now minus its duration): its inputs
    were read then, so an expiry (`cached(max_age=...)`) counts from there. A
    multi_asset's outputs carry that start (`STARTED_KEY`), so all of one body's
    outputs record one `computed_at`: their origins are equal, which is how a
    hit tells the outputs of one computation from those of two.
    """
    raw = value_of((meta or {}).get(DURATION_KEY))
    took = float(raw) if isinstance(raw, int | float) else None
    started = value_of((meta or {}).get(STARTED_KEY))
    if not isinstance(started, int | float) or isinstance(started, bool):
        started = time.time() - (took or 0.0)
    return Origin(
        run_id=run_id,
        deployment=deployment(),
        computed_at=round(float(started), 3),
        duration_s=took,
    )


def computed_by(origin: Origin | None) -> str | None:
    """`deployment X, run Y`, from what a result's origin claims (display only)."""
    if origin is None:
        return None
    who = [f"{k} {v}" for k, v in (("deployment", origin.deployment), ("run", origin.run_id)) if v]
    return ", ".join(who) or None


def deployment() -> str:
    """`PIVOT_DEPLOYMENT`, else the host name: who computed a result."""
    return os.environ.get("PIVOT_DEPLOYMENT") or socket.gethostname()


def value_of(entry: Any) -> Any:
    """A metadata entry's plain value (Dagster wraps most in a MetadataValue)."""
    return getattr(entry, "value", entry)


def recorded(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(fingerprint, content hash) a pivot materialization recorded, or None."""
    fp, h = value_of(meta.get(FINGERPRINT_KEY)), value_of(meta.get(HASH_KEY))
    return (fp, h) if fp and h else None


def recorded_path(meta: Mapping[str, Any]) -> str | None:
    """The workspace path a pivot materialization of a Path output recorded, or None."""
    path = value_of(meta.get(WORKSPACE_PATH_KEY))
    return path if isinstance(path, str) and path else None


def is_pivots(meta: Mapping[str, Any], partition: str | None) -> bool:
    """Whether pivot's IO manager recorded this materialization (of `partition`): one
    output's, or a range run's, which names each partition's hash instead."""
    if recorded(meta) is not None:
        return True
    hashes = value_of(meta.get(PARTITION_HASHES_KEY))
    return partition is not None and isinstance(hashes, dict) and partition in hashes


# --- the one builder of event metadata -----------------------------------------------
def event_metadata(
    lock: Lock,
    out: OutputRecord,
    path: Path,
    *,
    hit: bool,
    source: str | None = None,
    found_in: str | None = None,
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A materialization's pivot metadata: computed (`hit=False`), a hit, or pulled.

    `path` is where the value lies (its cache object, or its workspace path);
    `source` names where a pulled result came from (the push sensor skips
    those); `found_in` where a hit was found (`explain.source_label`); keys
    already in `given` (the asset's own output metadata) are left to it. The
    lock's origin says who computed the result and, on a hit, the time saved.
    """
    meta: dict[str, Any] = {
        HASH_KEY: out.hash,
        SIZE_KEY: out.size,
        PATH_KEY: MetadataValue.path(str(path)),
        FORMAT_KEY: out.format or "",
        FINGERPRINT_KEY: lock.fingerprint,
        CACHE_HIT_KEY: hit,
    }
    if out.path is not None:
        meta[WORKSPACE_PATH_KEY] = out.path
    if source is not None:
        meta[SOURCE_KEY] = source
    if hit and found_in is not None:
        meta[FOUND_IN_KEY] = found_in
    origin = lock.origin
    if origin is not None:
        who = computed_by(origin)
        if who:
            meta[COMPUTED_BY_KEY] = who
        if origin.computed_at is not None:
            when = datetime.fromtimestamp(origin.computed_at, UTC)
            meta[COMPUTED_AT_KEY] = when.isoformat(timespec="seconds")
        if hit and origin.duration_s is not None:
            meta[SAVED_KEY] = MetadataValue.float(origin.duration_s)
    return {k: v for k, v in meta.items() if not given or k not in given}
