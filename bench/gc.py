"""Local gc at scale (issue 15): 100,000 objects named by 10,000 locks, in git.

Usage:
    .venv/bin/python bench/gc.py [--objects 100000] [--locks 10000] [--scratch DIR]

Builds a project with `--objects` small objects and `--locks` locks (each lock
names objects/locks of them, written through pivot_store's API: building it
with `pivot add` would take minutes), commits the locks on branch `main`, then
moves half the locks to other objects on branch `other` (so history names
objects the work tree does not). It times, as `pivot` CLI subprocesses:

  * `pivot gc --dry-run --workspace-only` (what gc cost before git history),
  * `pivot gc --dry-run` (work tree + every branch/tag through git),

and prints both with the ratio, the number of git refs read and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.repo import Repo


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def build(root: Path, n_objects: int, n_locks: int) -> None:
    repo = Repo.open(root, create=True)
    per = max(1, n_objects // n_locks)
    oids = [repo.objects.add_bytes(f"object {i}".encode()).oid for i in range(n_objects)]
    for j in range(n_locks):
        outs = [
            OutputRecord(name=f"o{k}", hash=oids[j * per + k], size=10, format="raw")
            for k in range(per)
            if j * per + k < len(oids)
        ]
        repo.write_lock(Lock.build(f"asset{j % 50}/p{j}", FingerprintParts(params={"j": j}), outs))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "b@example.com")
    _git(root, "config", "user.name", "bench")
    _git(root, "add", "-A", ".pivot/stages")
    _git(root, "commit", "-q", "-m", "locks")
    _git(root, "checkout", "-q", "-b", "other")
    extra = [repo.objects.add_bytes(f"other {i}".encode()).oid for i in range(n_locks // 2)]
    for j, oid in enumerate(extra):
        out = OutputRecord(name="o0", hash=oid, size=10, format="raw")
        repo.write_lock(
            Lock.build(f"asset{j % 50}/p{j}", FingerprintParts(params={"j": -j}), [out])
        )
    _git(root, "commit", "-q", "-am", "other results")
    _git(root, "checkout", "-q", "main")


def timed(root: Path, *args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pivot_store.cli.app", "gc", "--grace", "0", "--json", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--locks", type=int, default=10_000)
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(dir=args.scratch, prefix="pivot-gc-bench-"))
    try:
        t0 = time.perf_counter()
        build(scratch, args.objects, args.locks)
        print(
            f"built {args.objects} objects, {args.locks} locks in {time.perf_counter() - t0:.1f} s"
        )
        ws, ws_rep = timed(scratch, "--dry-run", "--workspace-only")
        full, full_rep = timed(scratch, "--dry-run")
        print(f"gc --dry-run --workspace-only: {ws:.2f} s, would remove {len(ws_rep['removed'])}")
        print(
            f"gc --dry-run (git history, {full_rep['git_refs']} refs): {full:.2f} s,"
            f" would remove {len(full_rep['removed'])}; {full / ws:.2f}x the work-tree-only gc"
        )
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
