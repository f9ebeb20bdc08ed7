"""A changed folder (issue 17): `pivot status` and `pivot add` after one file of a
10,000-file folder is modified, or one file is added.

Builds, under `--dir` (deleted first), one project per code tree: `new` runs
this tree's `pivot`; with `--old PATH` (a checkout of another commit's source
tree, put first on sys.path), `old` runs that one on an identical project of
its own (two trees never share a state db). Each project has `--folders`
folders of `--files` files of 200 bytes, one lock each (`pivot add`), and its
indexes filled by no-op statuses. Then, `--repeat` times and alternating old
and new in the same moment, each step changes the first folder in both
projects, waits past the racy window, and times one command (checkout mode
`--mode`, hardlink by default as in a new project):

- a no-op `pivot status`
- `pivot status` with one file modified (a new 200-byte version)
- `pivot status` with one file added
- `pivot add` of the changed folder (its new version committed), right after
  the last add, and after a `pivot status` (untimed) as a user would run one

Figures are wall seconds and CPU seconds of the `pivot` process, the median
of the repeats, with the load average next to each. Unset
PYTHONDONTWRITEBYTECODE and compile both trees first (`python -m compileall`),
or every call recompiles. Not run by CI; nothing here is a test.

    .venv/bin/python bench/folder_change.py --dir /tmp/fc [--old /tmp/main-src]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The old tree's source is put first on sys.path, and the editable install's
# finder (which would answer for pivot_store first) is taken out.
_MAIN = (
    "import os, sys\n"
    "src = os.environ.get('PIVOT_BENCH_SRC')\n"
    "if src:\n"
    "    sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
    "    sys.path.insert(0, src)\n"
    "from pivot_store.cli.app import main\n"
    "raise SystemExit(main())\n"
)
PIVOT = [sys.executable, "-c", _MAIN]
SIZE = 200
SETTLE = 0.12  # past the racy window (RACY_NS = 50 ms), so what changed is recorded


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(args: list[str], cwd: Path, pythonpath: str | None) -> tuple[float, float]:
    """(wall s, CPU s of the child); exit 1 (status: modified) is not a failure."""
    env = dict(os.environ)
    if pythonpath:
        env["PIVOT_BENCH_SRC"] = pythonpath
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        PIVOT + args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"pivot {' '.join(args)} failed ({code}): {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def project(root: Path, folders: int, files: int, mode: str, pythonpath: str | None) -> None:
    root.mkdir(parents=True)
    run(["init"], root, pythonpath)
    config = root / ".pivot" / "config.yaml"
    text = config.read_text()
    assert "checkout_mode: hardlink\n" in text, text
    config.write_text(text.replace("checkout_mode: hardlink\n", f"checkout_mode: {mode}\n"))
    for k in range(folders):
        d = root / f"d{k}"
        d.mkdir()
        for i in range(files):
            (d / f"f{i:05}.bin").write_bytes(f"{k}-{i}".encode().ljust(SIZE, b"."))
        run(["add", d.name], root, pythonpath)
    for _ in range(2):  # fill the indexes, as settled entries
        time.sleep(SETTLE)
        run(["status"], root, pythonpath)


def replace(path: Path, data: bytes) -> None:
    """A new version of `path` (a hardlink checkout is the cache object: never edit it)."""
    if path.exists():
        path.chmod(0o644)
        path.unlink()
    path.write_bytes(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/folder-change"))
    ap.add_argument("--old", help="source tree of the code to compare with")
    ap.add_argument("--folders", type=int, default=1)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mode", choices=["hardlink", "copy", "symlink"], default="hardlink")
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    trees = {"new": None} if not args.old else {"old": os.path.abspath(args.old), "new": None}
    for name, pp in trees.items():
        t0 = time.perf_counter()
        project(args.dir / name, args.folders, args.files, args.mode, pp)
        print(f"built {name}: {time.perf_counter() - t0:.1f} s ({load()})", flush=True)
    steps = {
        "status, nothing changed": lambda root, n: None,
        "status, one file modified": lambda root, n: replace(
            root / "d0" / "f00007.bin", f"v{n}".encode().ljust(SIZE, b"!")
        ),
        "status, one file added": lambda root, n: replace(
            root / "d0" / f"added{n}.bin", f"a{n}".encode().ljust(SIZE, b"+")
        ),
        "add of the changed folder": lambda root, n: replace(
            root / "d0" / "f00011.bin", f"c{n}".encode().ljust(SIZE, b"#")
        ),
        "add after a status": lambda root, n: replace(
            root / "d0" / "f00013.bin", f"s{n}".encode().ljust(SIZE, b"=")
        ),
    }
    for label, change in steps.items():
        cmd = ["add", "d0"] if label.startswith("add") else ["status"]
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        loads: list[float] = []
        for n in range(args.repeat):
            for name in trees:
                change(args.dir / name, n)
            time.sleep(SETTLE)
            if label == "add after a status":  # the user looks before committing
                for name, pp in trees.items():
                    run(["status"], args.dir / name, pp)
                time.sleep(SETTLE)
            for name, pp in trees.items():
                loads.append(os.getloadavg()[0])
                times[name].append(run(cmd, args.dir / name, pp))
        line = f"{label:<28}"
        for name in trees:
            wall = statistics.median(w for w, _ in times[name])
            cpu = statistics.median(c for _, c in times[name])
            line += f"  {name} {wall:6.3f} s [{cpu:5.3f} CPU]"
        if "old" in trees:
            ratio = statistics.median(
                times["new"][i][0] / times["old"][i][0] for i in range(args.repeat)
            )
            line += f"  new/old {ratio:4.2f}x"
        print(f"{line}  (load {min(loads):.1f}-{max(loads):.1f})", flush=True)


if __name__ == "__main__":
    main()
