"""Locks at a git ref, read through git without a checkout (remote gc's `--rev`).

`git ls-tree -r` names the `.pivot/stages/**.lock` files at the ref and one
`git cat-file --batch` reads them all; each is parsed by `lockfile`'s own
parser, so a malformed lock at a ref stops gc the way one in the work tree does
(gc cannot know what it needs).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pivot_store import keys
from pivot_store.errors import ConfigError
from pivot_store.lockfile import Lock, loads_lock

STAGES = ".pivot/stages"


def _git(root: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], input=data, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed", "install git, or gc without --rev") from None
    if out.returncode != 0:
        msg = out.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(
            f"git {args[0]} failed in {root}: {msg[-1] if msg else out.returncode}",
            "pass a branch, tag or commit of this repository to --rev",
        )
    return out.stdout


def locks_at_ref(root: Path, ref: str) -> list[Lock]:
    """Every lock under `.pivot/stages/` at `ref` (a branch, tag or commit)."""
    if ref.startswith("-"):
        raise ConfigError(f"{ref!r} is not a git ref", "pass a branch, tag or commit to --rev")
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode()
    except ConfigError:
        raise ConfigError(
            f"{ref!r} is not a branch, tag or commit of the git repository at {root}",
            "pass an existing ref to --rev (`git branch -a`, `git tag`)",
        ) from None
    commit = commit.strip()
    listed = _git(root, "ls-tree", "-r", "-z", "--full-name", "--name-only", commit, "--", STAGES)
    paths = [p for p in listed.decode().split("\0") if p.endswith(keys.LOCK_SUFFIX)]
    if not paths:
        return []
    batch = "".join(f"{commit}:{p}\n" for p in paths).encode()
    out = _git(root, "cat-file", "--batch", data=batch)
    locks: list[Lock] = []
    pos = 0
    for p in paths:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3 or header[1] != b"blob":
            continue
        size = int(header[2])
        raw = out[pos : pos + size]
        pos += size + 1
        locks.append(loads_lock(raw, f"{p} at {ref}"))
    return locks
