"""Why a step was a cache miss, and where a hit came from: in words, for people.

Pure functions over `FingerprintParts` and `Lock` (plus two small readers of a
Repo), so `cached` (inside a step) and `pivot why` (outside any run) say the
same thing. A miss is explained by diffing the new parts against the best
earlier result for the same lock name: the current lock, else the newest
entry of the local run-cache for that name. One line per cause:

    code version src-a -> src-b (changed: mylib.data.fit)
    config key `lr` 0.1 -> 0.2
    resource `db` config `env` prod -> staging
    upstream `sales` hash ab12cd34 -> 99ef0011
    new partition 2024-01-03

The explanation never decides anything: the fingerprint does. An origin read
from a remote is that remote's claim and is only shown.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, NamedTuple

from pivot_dagster import fingerprint, formats, handoff
from pivot_dagster.asset_keys import PARTITION_MARK
from pivot_dagster.engine import LOCAL_SOURCE, LOCK_SOURCE, Engine, Found
from pivot_dagster.fingerprint import MISSING_DEP
from pivot_store import keys, runcache
from pivot_store.lockfile import FingerprintParts, Lock, Origin
from pivot_store.repo import Repo

REFRESH_TAG = "pivot/refresh"  # run tag: `true`, `*`, or a comma-separated list of asset keys
REFRESH_ALL = ("true", "*", "1", "yes")
REFRESH_CAUSE = f"refresh requested (run tag {REFRESH_TAG})"
NO_EARLIER = "no earlier result"
LOCK_LABEL = "local lock"
LOCAL_LABEL = "local run-cache"
_SHORT = 8  # hash characters shown


class Previous(NamedTuple):
    """The best earlier result for a lock name, and what is known around it."""

    lock: Lock | None
    where: str | None  # LOCK_LABEL / LOCAL_LABEL, None without a result
    usable: str | None  # why `lock`'s result cannot be used here, None if it can
    siblings: bool  # other partitions of the same asset have locks


# --- control ---------------------------------------------------------------------------
def refresh_requested(tags: Mapping[str, str] | None, asset_key: str) -> bool:
    """Whether the run's `pivot/refresh` tag names this asset (user string `a/b`)."""
    raw = (tags or {}).get(REFRESH_TAG)
    if raw is None:
        return False
    wanted = {w.strip() for w in str(raw).split(",") if w.strip()}
    return any(w.lower() in REFRESH_ALL for w in wanted) or asset_key in wanted


def expiry(
    origin: Origin | None, max_age: timedelta | None, now: float | None = None
) -> str | None:
    """Why a stored result is too old for `max_age`, or None when it is fresh enough.

    A result without `computed_at` (written before pivot recorded origins) is
    expired: when in doubt, miss.
    """
    if max_age is None:
        return None
    limit = max_age.total_seconds()
    at = origin.computed_at if origin is not None else None
    if at is None:
        return f"expired (no computed_at recorded, max_age {duration(limit)})"
    age = (time.time() if now is None else now) - at
    if age <= limit:
        return None
    return f"expired (computed {duration(age)} ago, max_age {duration(limit)})"


# --- the decision, shared by `cached` and `pivot why` ---------------------------------------
def decide(
    engine: Engine,
    name: str,
    parts: FingerprintParts,
    expected: formats.Expected | None,
    *,
    max_age: timedelta | None = None,
    refresh: bool = False,
) -> tuple[Found | None, list[str]]:
    """(the stored result to reuse, or None and why not, one line per cause).

    Order: a missing upstream, then a refresh the run asked for, then the
    stored results (the first found, too old, is a miss: when in doubt, miss).
    """
    causes = missing_upstreams(parts)
    if refresh:
        causes.append(REFRESH_CAUSE)
    if causes:
        return None, causes
    found = engine.find_result(name, parts, expected, lambda lk: expiry(lk.origin, max_age))
    if found is None:
        return None, miss_causes(name, parts, previous(engine.repo, name))
    too_old = expiry(found.lock.origin, max_age)
    if too_old is not None:
        return None, [too_old]
    return found, []


# --- misses ------------------------------------------------------------------------------
def missing_upstreams(parts: FingerprintParts) -> list[str]:
    """An input the fingerprint cannot name (an upstream without a result, one with
    no data version, a declared file that is absent): never a hit, whatever is stored."""
    plain = [
        f"upstream `{n}` missing (no pivot result)"
        for n, h in parts.deps.items()
        if h == MISSING_DEP
    ]
    named = [
        why
        for why in fingerprint.missing_reasons(parts)
        if not why.endswith("has no stored result: not cached")
    ]
    return plain + named


def miss_causes(name: str, parts: FingerprintParts, previous: Previous) -> list[str]:
    """One line per reason the stored results do not match `parts` (never empty)."""
    old = previous.lock
    if old is None:
        if parts.partition is not None and previous.siblings:
            return [f"new partition {parts.partition}"]
        return [NO_EARLIER]
    if old.fingerprint == parts.digest(name):
        return [f"stored result unusable here ({previous.usable or 'not found'})"]
    lines = diff_parts(old.parts, parts)
    if previous.where == LOCAL_LABEL:
        lines = [f"{line} (against the {LOCAL_LABEL})" for line in lines]
    return lines or [f"fingerprint {_short(old.fingerprint)} -> {_short(parts.digest(name))}"]


def group_cause(others: list[str]) -> str:
    """A multi_asset output whose stored result has no partner from the same computation
    for the `others` (lock names): all its outputs are computed again, together."""
    named = ", ".join(f"`{o}`" for o in others) or "another output"
    return (
        f"stored, but {named} has no result from the same computation"
        " (a multi_asset's outputs are reused only together)"
    )


def diff_parts(old: FingerprintParts, new: FingerprintParts) -> list[str]:
    """What changed from `old` to `new`, one line per changed item."""
    lines: list[str] = []
    if old.code_version != new.code_version or old.code != new.code:
        lines.append(_code_line(old, new))
    lines += _dict_lines("config key", _flatten(old.params), _flatten(new.params))
    for res in sorted(set(old.resources) | set(new.resources)):
        was, now = old.resources.get(res), new.resources.get(res)
        if was == now:
            continue
        if was is None or now is None:
            lines.append(f"resource `{res}` {'added' if was is None else 'removed'}")
            continue
        prefix = f"resource `{res}` config"
        lines += _dict_lines(prefix, _flatten(was), _flatten(now)) or [f"{prefix} changed"]
    lines += _hash_lines("upstream", old.deps, new.deps)
    lines += _hash_lines("file", old.files, new.files)
    if old.partition != new.partition:
        lines.append(f"partition {old.partition} -> {new.partition}")
    return lines


def _code_line(old: FingerprintParts, new: FingerprintParts) -> str:
    text = f"code version {old.code_version} -> {new.code_version}"
    if old.code_version == new.code_version:
        text = f"code version {new.code_version} (reached code changed)"
    changed = sorted(k for k in set(old.code) & set(new.code) if old.code[k] != new.code[k])
    added = sorted(set(new.code) - set(old.code))
    removed = sorted(set(old.code) - set(new.code))
    notes = [
        f"{label}: {', '.join(names)}"
        for label, names in (("changed", changed), ("added", added), ("removed", removed))
        if names and (old.code or label == "changed")
    ]
    return f"{text} ({'; '.join(notes)})" if notes else text


def _dict_lines(prefix: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            lines.append(f"{prefix} `{k}` added (= {_show(new[k])})")
        elif k not in new:
            lines.append(f"{prefix} `{k}` removed (was {_show(old[k])})")
        elif old[k] != new[k]:
            lines.append(f"{prefix} `{k}` {_show(old[k])} -> {_show(new[k])}")
    return lines


def _hash_lines(label: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    lines = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            lines.append(f"{label} `{k}` added")
        elif k not in new:
            lines.append(f"{label} `{k}` removed")
        elif old[k] != new[k]:
            lines.append(f"{label} `{k}` hash {_short(old[k])} -> {_short(new[k])}")
    return lines


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config as `a.b` keys, so a changed leaf is named, not its whole section."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(h: str) -> str:
    return ",".join(p[:_SHORT] for p in h.split(",")) if h != MISSING_DEP else h


# --- hits ----------------------------------------------------------------------------------
def source_label(source: str | None) -> str:
    """An `Engine.find_result` source as people read it."""
    if source == LOCK_SOURCE:
        return LOCK_LABEL
    if source == LOCAL_SOURCE:
        return LOCAL_LABEL
    return f"remote run-cache {source}" if source else "unknown"


def hit_line(source_text: str, origin: Origin | None, now: float | None = None) -> str:
    """`from local lock (deployment X, run Y, computed 3 h ago; saved 12 s)`."""
    bits = []
    who = handoff.computed_by(origin)
    if who:
        bits.append(who)
    if origin is not None and origin.computed_at is not None:
        age = max(0.0, (time.time() if now is None else now) - origin.computed_at)
        bits.append(f"computed {duration(age)} ago")
    text = f"from {source_text}"
    if bits:
        text += f" ({', '.join(bits)})"
    saved = origin.duration_s if origin is not None else None
    text += f"; saved {duration(saved)}" if saved is not None else "; compute time unknown"
    return text


def duration(seconds: float) -> str:
    """`3 h`, `1.5 min`, `0.25 s`: the largest unit that is at least one."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{_num(seconds / size)} {unit}"
    if 0 < seconds < 0.01:
        return "<0.01 s"
    return f"{_num(seconds, 2 if seconds < 10 else 1)} s"


def _num(x: float, digits: int = 1) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") or "0"


# --- reading the earlier result ----------------------------------------------------------------
def previous(repo: Repo, name: str) -> Previous:
    """The current lock of `name`, else its newest local run-cache entry."""
    lock, where = repo.read_lock(name), LOCK_LABEL
    if lock is None:
        lock, where = runcache.newest_local(repo.runs_dir, name), LOCAL_LABEL
    return Previous(
        lock,
        where if lock is not None else None,
        unusable(repo, lock) if lock is not None else None,
        lock is None and _has_siblings(repo, name),
    )


def unusable(repo: Repo, lock: Lock) -> str | None:
    """Why a local result cannot be used (the checks of `Engine.find_result`), or None."""
    unknown = sorted({str(o.format) for o in lock.outputs} - set(formats.registry.BY_NAME))
    if unknown:
        return f"format {', '.join(unknown)} unknown here"
    missing = [o.hash for o in lock.outputs if not repo.objects.exists(o.hash)]
    if missing:
        return f"objects missing: {', '.join(missing)}"
    return None


def _has_siblings(repo: Repo, name: str) -> bool:
    """Whether the asset of a partition lock name has locks for other partitions."""
    if not name.rpartition("/")[2].startswith(PARTITION_MARK):
        return False
    folder = repo.lock_path(name).parent
    return folder.is_dir() and any(folder.glob(PARTITION_MARK + "*" + keys.LOCK_SUFFIX))


def joined(lines: Iterable[str]) -> str:
    return "; ".join(lines)
