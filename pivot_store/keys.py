"""Names -> lock paths and remote keys; every escape is refused here.

A name is a `/`-separated list of segments (an asset key's parts, a tracked
path's parts). Arbitrary strings become segments through `encode_segment`,
which is reversible and produces only `[A-Za-z0-9_.~%@-]` with no leading dot,
so no segment can be `..`, hidden, absolute, or contain a separator.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from pivot_store.errors import UnsafeName

MAX_SEGMENT_BYTES = 255
MAX_NAME_BYTES = 1024
LOCK_SUFFIX = ".lock"
_SAFE = "-_.~"
# A Windows drive ("C:", "C:/x"); "0:" or "a:b.csv" are ordinary POSIX names.
_DRIVE = re.compile(r"[A-Za-z]:(/|$)")


def encode_segment(text: str) -> str:
    """Any string -> one safe path segment (percent-encoding, leading dot escaped)."""
    if not isinstance(text, str) or text == "":
        raise UnsafeName(f"{text!r} cannot be a name segment", "use a non-empty string")
    if not _is_utf8(text):
        raise UnsafeName(f"name segment {text!r} is not valid UTF-8", "use a UTF-8 string")
    seg = quote(text, safe=_SAFE)
    if seg.startswith("."):
        seg = "%2E" + seg[1:]
    if len(seg.encode()) > MAX_SEGMENT_BYTES:
        raise UnsafeName(
            f"name segment {text[:40]!r}... is {len(seg)} bytes once encoded",
            f"keep each key part under {MAX_SEGMENT_BYTES} bytes",
        )
    return seg


def decode_segment(seg: str) -> str:
    return unquote(seg)


def validate_name(name: str) -> str:
    """Refuse a name that could leave its folder: `..`, absolute, NUL, empty parts."""
    if not isinstance(name, str) or not name:
        raise UnsafeName(f"{name!r} is not a valid name", "use a relative path like data/x.csv")
    problem = None
    if "\x00" in name:
        problem = "contains a NUL byte"
    elif not _is_utf8(name):
        # Lone surrogates (undecodable file names) cannot go into JSON or a key.
        problem = "is not valid UTF-8 (rename the file)"
    elif name.startswith(("/", "\\")) or _DRIVE.match(name):
        problem = "is absolute"
    elif "\\" in name:
        problem = "contains a backslash"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    else:
        for part in name.split("/"):
            if part in ("", ".", ".."):
                problem = f"has a {part or 'empty'!r} segment"
                break
            if len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
                problem = f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
                break
    if problem:
        raise UnsafeName(
            f"name {name[:80]!r} {problem}",
            "names must be relative paths inside the project, without '..'",
        )
    return name


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def name_from_parts(parts: list[str]) -> str:
    """Encode each part, then join: the inverse of `parts_from_name`."""
    return validate_name("/".join(encode_segment(p) for p in parts))


def parts_from_name(name: str) -> list[str]:
    return [decode_segment(p) for p in validate_name(name).split("/")]


def lock_path(stages_dir: Path, name: str) -> Path:
    """`.pivot/stages/<name>.lock`, checked to stay inside `stages_dir`."""
    path = stages_dir / (validate_name(name) + LOCK_SUFFIX)
    _inside(path, stages_dir, name)
    return path


def name_from_lock_path(stages_dir: Path, path: Path) -> str:
    rel = path.relative_to(stages_dir).as_posix()
    return rel[: -len(LOCK_SUFFIX)]


def run_prefix(name: str, fingerprint: str) -> str:
    """`runs/<name>/<fingerprint>`: where a fingerprint's results live on a remote."""
    from pivot_store.oid import validate

    validate(fingerprint)
    return f"runs/{validate_name(name)}/{fingerprint}"


def workspace_path(root: Path, rel: str) -> Path:
    """A tracked path inside the project; refuses anything that resolves outside."""
    validate_name(rel)
    path = root / rel
    _inside(path, root, rel)
    return path


def _inside(path: Path, base: Path, name: str) -> None:
    base_r = base.resolve()
    try:
        path.resolve().relative_to(base_r)
    except ValueError:
        raise UnsafeName(
            f"{name!r} resolves outside {base}",
            "a symlink in the path leads out of the project; remove it",
        ) from None


# --- run-cache and latest-pointer layout (local and remote) ---------------------
RUNS = "runs"
LATEST = "latest"
POINTER_SUFFIX = ".json"
_POINTER = re.compile(r"(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{16})\.json")


def scratch_dir(pivot_dir: Path, purpose: str) -> Path:
    """`.pivot/tmp/<purpose>`: this machine's scratch (flight locks, a run's prefetch
    table); never pushed, and gc sweeps dead writers' temps under it."""
    if purpose not in {"flight", "prefetch"}:
        raise ValueError(f"unknown scratch folder {purpose!r}")
    return pivot_dir / "tmp" / purpose


def run_dir(runs_dir: Path, name: str, fingerprint: str) -> Path:
    """`.pivot/runs/<name>/<fingerprint>`: `run_prefix` under the local `runs_dir`, kept inside."""
    rel = run_prefix(name, fingerprint).removeprefix(RUNS + "/")
    path = runs_dir / rel
    _inside(path, runs_dir, rel)
    return path


def latest_prefix(name: str) -> str:
    """`latest/<name>`: where a name's latest pointers live on a remote."""
    return f"{LATEST}/{validate_name(name)}"


def pointer_name(created_at: datetime, entry_id: str) -> str:
    """`<UTC stamp>-<entry id>.json`: names sort by time, so the newest is the last."""
    from pivot_store.oid import validate

    validate(entry_id)
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{entry_id}{POINTER_SUFFIX}"


def parse_pointer(file_name: str) -> tuple[datetime, str] | None:
    """(the UTC time, the entry id) a pointer's file name claims, or None for anything else.

    The claim is only a hint for ordering the reads: a reader must check it
    against the pointer's (signed) content, see `runcache.latest_entry`.
    """
    m = _POINTER.fullmatch(file_name)
    if m is None:
        return None
    try:
        stamp = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:  # 20241399T... matches the pattern but is no time
        return None
    return stamp, m.group(2)


def parse_pointer_name(file_name: str) -> str | None:
    """The entry id a pointer's file name claims, or None for anything else."""
    found = parse_pointer(file_name)
    return found[1] if found else None


# --- checkouts of remote data -----------------------------------------------------
# Folders no checkout of remote data may enter: git's (hooks run code) and the store's
# own (config names the remotes, the cache holds the objects).
PROTECTED_SEGMENTS = (".git", ".pivot")


def remote_checkout_name(name: str) -> str:
    """A workspace path remote data may be checked out to: `validate_name`, and no
    `.git` or `.pivot` segment anywhere (issue 12 item 2)."""
    validate_name(name)
    for part in name.split("/"):
        if part.lower() in PROTECTED_SEGMENTS:
            raise UnsafeName(
                f"name {name[:80]!r} has a {part!r} segment",
                f"remote data is never checked out into {' or '.join(PROTECTED_SEGMENTS)}",
            )
    return name
