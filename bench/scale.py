"""Scale benchmark (issue 17, first table): 10,000 locks and 100,000 objects.

Builds a project with `--locks` single 200-byte files, each its own lock
(`pivot add` in batches of 1,000), and `--folders` folders of `--files` files
of 200 bytes, one lock each, with a folder remote. It prints, as wall seconds
and CPU seconds of the `pivot` process (user + system, from wait4), with the
load average next to each figure:

- first full push of the single-file locks (`--locks` objects) to the folder remote
- first push of the folders (`--folders` x `--files` objects)
- no-op `pivot status`, no-op `pivot push`, `pivot gc --dry-run` on the whole project
- `pivot status NAME` of one lock, and `pivot verify`

No-op figures are the minimum of `--repeat` runs (the first no-op run after
the adds is reported apart: it is the one that fills any index). With
`--dvc PATH` (a `dvc` binary, optional), `dvc status` on one folder of
`--folders` x `--files` files is measured as a reference, beside a no-op
`pivot status` of the same folder as one lock.

    .venv/bin/python bench/scale.py [--dir /tmp/scale] [--dvc /path/to/dvc]

Not run by CI; nothing here is a test. The project is built under `--dir`
and left there for inspection; a previous run's tree is deleted first, a
minute before the build (see `clear`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PIVOT = [str(Path(sys.executable).with_name("pivot"))]
BATCH = 1000
SIZE = 200


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(cmd: list[str], cwd: Path, *, check: bool = True) -> tuple[float, float, int]:
    """(wall s, CPU s of the child, exit code); output discarded."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = code
    if check and code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({code}): {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, code


def report(label: str, wall: float, cpu: float, extra: str = "") -> None:
    print(f"{label:<46} {wall:8.2f} s  [{cpu:6.2f} s CPU]  ({load()}){extra}", flush=True)


def best(label: str, cmd: list[str], cwd: Path, repeat: int, *, check: bool = True) -> None:
    runs = [run(cmd, cwd, check=check) for _ in range(repeat)]
    wall = min(r[0] for r in runs)
    cpu = min(r[1] for r in runs)
    report(label, wall, cpu, f"  min of {repeat}")


def write_files(folder: Path, count: int, tag: str) -> list[Path]:
    """`count` distinct 200-byte files under `folder`, 1,000 per subfolder."""
    paths = []
    for i in range(count):
        sub = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"{i:06d}.bin"
        body = f"{tag} {i} ".encode()
        p.write_bytes((body * (SIZE // len(body) + 1))[:SIZE])
        paths.append(p)
    return paths


def add_in_batches(root: Path, paths: list[str]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(paths), BATCH):
        run([*PIVOT, "add", *paths[i : i + BATCH]], root)
    return time.perf_counter() - t0


def clear(root: Path) -> None:
    """Delete a previous run's tree, then wait a minute before building anew.

    ext4 skips inodes deleted in the last minute (five while their inode-table
    block is dirty) when it allocates, and a create next to 200,000 of them
    scans them all: `recently_deleted` was half of a first push's samples in
    `perf` right after the old tree went. That is not pivot's cost, so the
    bench syncs and lets the minute pass.
    """
    if not root.exists():
        return
    shutil.rmtree(root)
    os.sync()
    print("# deleted the previous run's tree; waiting 65 s (ext4 inode reuse)", flush=True)
    time.sleep(65)


def build(root: Path, locks: int, folders: int, files: int, repeat: int) -> None:
    proj, remote = root / "project", root / "remote"
    proj.mkdir(parents=True)
    run([*PIVOT, "init"], proj)
    run([*PIVOT, "remote", "add", "--default", "bench", str(remote)], proj)
    print(f"# {locks} single-file locks + {folders} folders x {files} files, in {proj}")
    singles = write_files(proj / "s", locks, "single")
    took = add_in_batches(proj, [p.relative_to(proj).as_posix() for p in singles])
    print(f"add {locks} single files (batches of {BATCH}): {took:.1f} s ({load()})", flush=True)

    w, c, _ = run([*PIVOT, "push"], proj)
    report(f"first full push, {locks} objects (folder remote)", w, c)

    for d in range(folders):
        write_files(proj / f"d{d}", files, f"folder{d}")
    t0 = time.perf_counter()
    run([*PIVOT, "add", *[f"d{d}" for d in range(folders)]], proj)
    took = time.perf_counter() - t0
    print(f"add {folders} folders x {files} files: {took:.1f} s ({load()})", flush=True)
    w, c, _ = run([*PIVOT, "push"], proj)
    report(f"first push of the folders, {folders * files} objects", w, c)

    # The first no-op runs after the adds (they may fill an index), then the steady ones.
    w, c, _ = run([*PIVOT, "status"], proj)
    report("first no-op status after the adds", w, c)
    total = locks + folders
    best(f"no-op status ({total} locks)", [*PIVOT, "status"], proj, repeat)
    best("no-op push (folder remote)", [*PIVOT, "push"], proj, repeat)
    best("gc --dry-run", [*PIVOT, "gc", "--dry-run"], proj, repeat)
    one = singles[locks // 2].relative_to(proj).as_posix()
    best("status of one lock", [*PIVOT, "status", one], proj, repeat)
    best("status of one folder lock", [*PIVOT, "status", "d0"], proj, repeat)
    best("verify", [*PIVOT, "verify"], proj, 1)

    # Growing with what changed: touch one single-file lock's output and one folder file.
    target = singles[0]
    target.chmod(0o644)
    target.unlink()
    target.write_bytes(b"x" * SIZE)
    w, c, code = run([*PIVOT, "status"], proj, check=False)
    report("status with one file modified (exit 1)", w, c, f"  exit {code}")
    run([*PIVOT, "add", target.relative_to(proj).as_posix()], proj)
    best("no-op status after re-adding it", [*PIVOT, "status"], proj, repeat)


def dvc_reference(root: Path, dvc: str, count: int, repeat: int) -> None:
    """`dvc status` and `pivot status` on one folder of `count` files."""
    for tool in ("dvc", "pivot"):
        proj = root / f"ref-{tool}"
        if proj.exists():
            shutil.rmtree(proj)
        proj.mkdir(parents=True)
        write_files(proj / "data", count, "ref")
        if tool == "dvc":
            run([dvc, "init", "--no-scm"], proj)
            t0 = time.perf_counter()
            run([dvc, "add", "data"], proj)
            print(f"dvc add, one folder of {count} files: {time.perf_counter() - t0:.1f} s")
            # A no-op status: the same answer pivot's no-op gives, or the figure means nothing.
            said = subprocess.run([dvc, "status"], cwd=proj, capture_output=True, text=True)
            version = subprocess.run([dvc, "--version"], capture_output=True, text=True)
            print(f"dvc {version.stdout.strip()} status says: {said.stdout.strip()!r}")
            if said.returncode != 0 or "up to date" not in said.stdout:
                raise SystemExit(f"dvc status is not a no-op here: {said.stdout}{said.stderr}")
            best(f"reference: dvc status, {count}-file folder", [dvc, "status"], proj, repeat)
        else:
            run([*PIVOT, "init"], proj)
            t0 = time.perf_counter()
            run([*PIVOT, "add", "data"], proj)
            print(f"pivot add, one folder of {count} files: {time.perf_counter() - t0:.1f} s")
            run([*PIVOT, "status"], proj)
            best(f"pivot status, {count}-file folder", [*PIVOT, "status"], proj, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/pivot-scale"))
    ap.add_argument("--locks", type=int, default=10_000)
    ap.add_argument("--folders", type=int, default=10)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dvc", help="a dvc binary: measure `dvc status` as a reference")
    args = ap.parse_args()
    print(f"# pivot: {' '.join(PIVOT)}; {load()}; {time.strftime('%H:%M:%S')}", flush=True)
    clear(args.dir)
    build(args.dir, args.locks, args.folders, args.files, args.repeat)
    if args.dvc:
        dvc_reference(args.dir, args.dvc, args.folders * args.files, args.repeat)


if __name__ == "__main__":
    main()
