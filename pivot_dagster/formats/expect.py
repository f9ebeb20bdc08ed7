"""What an asset could have produced: the check on an output that came from elsewhere.

A run-cache entry, a latest pointer or a lock from a remote names an output's
format and path; both are the writer's word. An output is accepted only in a
format this asset could have produced (issue 12 items 1 and 2):

- a known format (the registry), never a missing one: it is not read as pickle;
- the asset's forced format (`pivot/format` metadata or the IO manager's
  `formats`), when it has one;
- `path` only for an asset whose return annotation is a `Path` (or whose forced
  format is `path`), only at a name remote data may be checked out to
  (`keys.remote_checkout_name`: inside the project, no `.git` or `.pivot`
  segment), and at the asset's own path when its lock here names one;
- a value format only without a workspace path, and not for an asset that
  returns a `Path`.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

from pivot_dagster.formats.registry import BY_NAME
from pivot_dagster.handoff import FORMAT_KEY, WORKSPACE_PATH_KEY, value_of
from pivot_store import keys
from pivot_store.errors import UnsafeName
from pivot_store.lockfile import Lock, OutputRecord


@dataclass(frozen=True)
class Expected:
    """What is known of an asset's output. `returns_path` None: no annotation says."""

    forced: str | None = None
    returns_path: bool | None = None
    path: str | None = None  # its own workspace path (its lock here), when known


def refusal(out: OutputRecord, expected: Expected | None = None) -> str | None:
    """Why `out` cannot be this asset's output, or None when it could be."""
    exp = expected or Expected()
    if not out.format:
        return "the output has no format (never read as pickle)"
    handler = BY_NAME.get(out.format)
    if handler is None:
        return f"unknown format {out.format!r}"
    if exp.forced and out.format != exp.forced:
        return f"format {out.format!r}, but the asset's format is {exp.forced!r}"
    if handler.kind != "path":
        if out.path is not None:
            return f"a {out.format!r} value with a workspace path {out.path!r}"
        if exp.returns_path and not exp.forced:
            return f"format {out.format!r}, but the asset returns a Path"
        return None
    if not exp.returns_path and exp.forced != "path":
        return "a path output, but the asset does not return a Path"
    if out.path is None:
        return "a path output without a path"
    try:
        keys.remote_checkout_name(out.path)
    except UnsafeName as e:
        return str(e)
    if exp.path is not None and out.path != exp.path:
        return f"path {out.path!r}, but the asset's own path is {exp.path!r}"
    return None


def lock_refusal(lock: Lock, expected: Expected | None, own: Lock | None) -> str | None:
    """Why `lock` (read from elsewhere) cannot be this asset's result; `own`: its lock here,
    whose Path outputs fix where the asset's own paths are."""
    for out in lock.outputs:
        exp = expected or Expected()
        mine = same_output(own, out.name)
        if mine is not None and mine.path is not None:
            exp = replace(exp, path=mine.path)
        why = refusal(out, exp)
        if why is None and out.path is not None and exp.path is None:
            # Where a Path asset writes is known here only from its own lock, its
            # declared `pivot/workspace_path` or (remote-first) the instance: never from
            # the remote's word (issue 12 item 2).
            why = "a path output, and no lock here names the asset's own path (it runs here)"
        if why is not None:
            return f"output {out.name!r}: {why}"
    return None


def same_output(lock: Lock | None, name: str) -> OutputRecord | None:
    """`lock`'s output `name` (a one-output lock: its output), or None."""
    if lock is None:
        return None
    if len(lock.outputs) == 1:
        return lock.outputs[0]
    return next((o for o in lock.outputs if o.name == name), None)


def returns_path(fn: Any) -> bool | None:
    """Whether `fn` (an asset body, `cached`-wrapped or not) is annotated to return a Path."""
    fn = inspect.unwrap(fn)
    try:
        ret = typing.get_type_hints(fn).get("return", inspect.Signature.empty)
    except Exception:
        ret = inspect.signature(fn).return_annotation
    return is_path_type(ret)


def is_path_type(ret: Any) -> bool | None:
    """Whether an annotation (`MaterializeResult[T]`, `Output[T]` seen through) is a Path;
    None: says nothing."""
    origin = typing.get_origin(ret) or ret
    if getattr(origin, "__name__", None) in ("MaterializeResult", "Output"):
        args = typing.get_args(ret)
        ret = args[0] if args else Any
    if ret in (inspect.Signature.empty, Any, None) or isinstance(ret, str):
        return None
    union = typing.get_origin(ret) in (typing.Union, types.UnionType)
    members = typing.get_args(ret) if union else (ret,)
    return any(isinstance(t, type) and issubclass(t, PurePath) for t in members)


def for_asset(assets_def: Any, key: Any, formats: dict[str, str] | None = None) -> Expected:
    """`Expected` from an asset definition: its return annotation, and its forced format
    (`pivot/format` metadata, else `formats`, the IO manager's by asset key)."""
    try:
        fn = assets_def.op.compute_fn.decorated_fn
    except AttributeError:
        fn = None
    meta = getattr(assets_def, "metadata_by_key", {}).get(key) or {}
    forced = meta.get(FORMAT_KEY)
    if forced is None and formats:
        forced = formats.get(key.to_user_string())
    declared = value_of(meta.get(WORKSPACE_PATH_KEY))
    return Expected(
        forced=value_of(forced) or None,
        returns_path=returns_path(fn) if fn is not None else None,
        path=_declared_path(declared, key),
    )


def _declared_path(declared: Any, key: Any) -> str | None:
    """A Path asset's own path, declared by `pivot/workspace_path` definition metadata:
    where a remote result may be checked out before this project has its lock."""
    if declared is None:
        return None
    try:
        return keys.remote_checkout_name(str(declared))
    except UnsafeName as e:
        raise UnsafeName(f"{key.to_user_string()}: pivot/workspace_path: {e.what}", e.fix) from e
