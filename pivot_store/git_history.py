"""The locks a project's git history still names: what gc must keep.

A lock committed on another branch or tag names objects the work tree may no
longer use; deleting them loses that branch's data unless it was pushed.
Locks are read straight from git (`ls-tree` of `.pivot/stages` at each ref,
then one `cat-file --batch` for all their blobs), never by a checkout, and
parsed by the one lock parser. Outside a git repository there is no history
and gc behaves as it always did.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pivot_store import keys
from pivot_store.errors import GitError
from pivot_store.lockfile import Lock, lock_from_bytes

# Local branches and tags, and HEAD (a detached checkout is a ref too).
REF_PATTERNS = ("refs/heads", "refs/tags")


@dataclass
class HistoryLocks:
    """The locks of every ref, deduplicated by blob."""

    refs: list[str] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)


def history_locks(stages_dir: Path) -> HistoryLocks | None:
    """Every lock under `stages_dir` at each local branch, tag and HEAD; None outside git."""
    top = _toplevel(stages_dir.parent)
    if top is None:
        return None
    try:
        rel = stages_dir.resolve().relative_to(top).as_posix()
    except ValueError:
        return None
    refs = [*_refs(top), "HEAD"]
    trees = _trees(top, refs)
    blobs: dict[str, str] = {}  # blob id -> "ref:path", the first place it was seen
    for ref, tree in trees.items():
        for blob, path in _lock_blobs(top, tree, rel):
            blobs.setdefault(blob, f"{ref}:{path}")
    result = HistoryLocks(refs=list(trees))
    for blob, raw in _read_blobs(top, list(blobs)):
        result.locks.append(lock_from_bytes(raw, f"git {blobs[blob]}"))
    return result


def _git(top: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(top), *args], input=stdin, capture_output=True, check=True
        )
    except FileNotFoundError:
        raise GitError(
            "git is not installed", "install git, or run gc with --workspace-only"
        ) from None
    except subprocess.CalledProcessError as e:
        msg = e.stderr.decode("utf-8", "replace").strip()
        raise GitError(
            f"git {args[0]} failed: {msg}", "fix the repository, or run gc --workspace-only"
        ) from None
    return done.stdout


def _toplevel(folder: Path) -> Path | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return None  # no git: no history to keep
    if done.returncode != 0:
        return None
    return Path(done.stdout.decode().strip()).resolve()


def _refs(top: Path) -> list[str]:
    out = _git(top, "for-each-ref", "--format=%(refname)", *REF_PATTERNS)
    return [line for line in out.decode("utf-8", "replace").splitlines() if line]


def _trees(top: Path, refs: list[str]) -> dict[str, str]:
    """{ref: its tree id}, for refs that name a commit (an unborn HEAD, a tag of a blob
    do not); two refs at one tree are read once."""
    query = "".join(f"{r}^{{tree}}\n" for r in refs).encode()
    out = _git(top, "cat-file", "--batch-check=%(objectname) %(objecttype)", stdin=query)
    trees: dict[str, str] = {}
    seen: set[str] = set()
    for ref, line in zip(refs, out.decode().splitlines(), strict=True):
        oid, _, kind = line.partition(" ")
        if kind == "tree" and oid not in seen:
            seen.add(oid)
            trees[ref] = oid
    return trees


def _lock_blobs(top: Path, tree: str, rel: str) -> list[tuple[str, str]]:
    out = _git(top, "ls-tree", "-r", "-z", "--full-tree", tree, "--", rel)
    found = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path_b = record.partition(b"\t")
        _mode, kind, oid = meta.decode().split(" ")
        path = path_b.decode("utf-8", "replace")
        if kind == "blob" and path.endswith(keys.LOCK_SUFFIX) and "/.tmp-" not in f"/{path}":
            found.append((oid, path))
    return found


def _read_blobs(top: Path, blobs: list[str]) -> list[tuple[str, bytes]]:
    if not blobs:
        return []
    out = _git(top, "cat-file", "--batch", stdin="".join(f"{b}\n" for b in blobs).encode())
    result, pos = [], 0
    for blob in blobs:
        end = out.index(b"\n", pos)
        size = out[pos:end].decode().rsplit(" ", 1)[1]
        start = end + 1
        result.append((blob, out[start : start + int(size)]))
        pos = start + int(size) + 1  # content, then a newline
    return result


def refs_locks(stages_dir: Path, refs: list[str]) -> list[Lock]:
    """The locks under `stages_dir` at the given refs only (remote gc's `--rev`).

    A ref that names no commit is a GitError naming it; outside git, too.
    """
    top = _toplevel(stages_dir.parent)
    if top is None:
        raise GitError(f"{stages_dir.parent} is not in a git repository", "gc without --rev")
    rel = stages_dir.resolve().relative_to(top).as_posix()
    bad = [r for r in refs if r.startswith("-")]
    trees = _trees(top, [r for r in refs if not r.startswith("-")])
    bad += [r for r in refs if r not in trees and not r.startswith("-")]
    # Two refs at one tree are read once: a ref missing from `trees` may share one.
    named = {r for r in bad if _git_ok(top, "rev-parse", "--verify", "--quiet", f"{r}^{{tree}}")}
    if missing := [r for r in bad if r not in named]:
        raise GitError(
            f"{missing[0]!r} is not a branch, tag or commit of the git repository at {top}",
            "pass an existing ref to --rev (`git branch -a`, `git tag`)",
        )
    blobs: dict[str, str] = {}
    for ref, tree in trees.items():
        for blob, path in _lock_blobs(top, tree, rel):
            blobs.setdefault(blob, f"{ref}:{path}")
    return [lock_from_bytes(raw, f"git {blobs[b]}") for b, raw in _read_blobs(top, list(blobs))]


def _git_ok(top: Path, *args: str) -> bool:
    done = subprocess.run(["git", "-C", str(top), *args], capture_output=True, check=False)
    return done.returncode == 0
