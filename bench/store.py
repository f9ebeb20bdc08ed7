"""Benchmark of the local store (issue 2), optionally against DVC, on the same files.

Usage:
    .venv/bin/python bench/store.py [--scratch DIR] [--quick] [--dvc PATH]
                                    [--repeats N] [--json OUT.json] [--keep]

One run measures, median of `--repeats` (>= 3) runs each:

  * the startup floor: `status` in an empty project;
  * hashing a 1 GiB file with `pivot_store.hashing.hash_file` vs a raw
    `xxhash.xxh64` readinto loop over the same file (page cache, in-process);
  * `pivot add` of one 512 MiB file and of a folder of 2,000 x 4 KiB files,
    each as a subprocess of the `pivot` CLI in a fresh project;
  * a no-op `pivot status` (CLI, and in-process for reference);
  * `pivot checkout` of the folder by hardlink and by copy after deleting the
    workspace folder (CLI, and in-process without interpreter startup);
  * when DVC is found (`--dvc PATH`, `dvc` on PATH, or `import dvc`), the same
    operations with DVC (`dvc init --no-scm`, `dvc add`, `dvc status`,
    `dvc checkout` with cache.type hardlink / copy), printed as pivot/DVC ratios.

DVC is not a dependency of the project; install it in its own venv, e.g.
`python3.11 -m venv /tmp/dvcvenv && /tmp/dvcvenv/bin/pip install dvc`, and pass
`--dvc /tmp/dvcvenv/bin/dvc`. Every DVC state directory (site cache, global and
system config) points into the scratch folder. `--quick` shrinks the files
(smoke test; its figures are not comparable to the targets). The scratch
folder, with every large file, is removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pivot_store.hashing import hash_file  # noqa: E402

MIB = 1 << 20
CHUNK = 1 << 20


# --------------------------------------------------------------------------- timing
@dataclass
class Sample:
    wall: float
    cpu: float  # user + sys of the child processes (0 for in-process runs)


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def add(self, s: Sample) -> None:
        self.samples.append(s)

    @property
    def wall(self) -> float | None:
        return statistics.median(s.wall for s in self.samples) if self.samples else None

    @property
    def cpu(self) -> float | None:
        return statistics.median(s.cpu for s in self.samples) if self.samples else None

    def spread(self) -> str:
        if not self.samples:
            return ""
        w = [s.wall for s in self.samples]
        return f"{min(w):.3f}-{max(w):.3f}"


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_cmd(argv: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """Run one command, fail loudly on a non-zero exit, return wall and child CPU."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark command failed (exit {proc.returncode}) in {cwd}: {' '.join(argv)}\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return Sample(wall, cpu)


def run_inproc(fn: Callable[[], object]) -> Sample:
    t0 = time.perf_counter()
    fn()
    return Sample(time.perf_counter() - t0, 0.0)


def settle() -> None:
    """Flush dirty pages (untimed) so writeback of the setup never lands in a timing."""
    os.sync()


# --------------------------------------------------------------------------- inputs
def write_random(path: Path, size: int) -> None:
    block = 8 * MIB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def make_small_files(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def rmtree(path: Path) -> None:
    def onerror(func, p, exc_info):  # a read-only folder somewhere: make it writable
        os.chmod(os.path.dirname(p), 0o755)
        func(p)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=onerror)


# --------------------------------------------------------------------------- hashing
def raw_xxh64(path: Path) -> str:
    """The reference: a plain xxh64 readinto loop, 1 MiB reused buffer."""
    h = xxhash.xxh64()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def bench_hash(path: Path, repeats: int) -> tuple[Series, Series]:
    raw, piv = Series(), Series()
    want = raw_xxh64(path)  # also warms the page cache
    if hash_file(path) != want:
        raise SystemExit("hash_file and the raw xxh64 loop disagree")
    for r in range(repeats):
        order = [(raw, raw_xxh64), (piv, hash_file)]
        if r % 2:
            order.reverse()
        for series, fn in order:
            series.add(run_inproc(lambda fn=fn: fn(path)))
    return raw, piv


# --------------------------------------------------------------------------- tools
class Pivot:
    def __init__(self, exe: str, env: dict[str, str]) -> None:
        self.exe = exe
        self.env = env

    def cmd(self, cwd: Path, *args: str) -> Sample:
        return run_cmd([self.exe, *args], cwd, self.env)

    def init(self, proj: Path) -> None:
        proj.mkdir(parents=True)
        self.cmd(proj, "init", ".")

    def add(self, proj: Path, target: str) -> Sample:
        return self.cmd(proj, "add", target)

    def status(self, proj: Path) -> Sample:
        return self.cmd(proj, "status")  # exits 1 unless every lock is ok

    def checkout(self, proj: Path, mode: str) -> Sample:
        return self.cmd(proj, "checkout", "data", "--checkout-mode", mode)


class Dvc:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.env = env

    def cmd(self, cwd: Path, *args: str) -> Sample:
        return run_cmd([*self.argv, *args], cwd, self.env)

    def version(self) -> str:
        out = subprocess.run(
            [*self.argv, "--version"], env=self.env, capture_output=True, text=True, check=False
        )
        return out.stdout.strip() or "?"

    def init(self, proj: Path) -> None:
        proj.mkdir(parents=True)
        self.cmd(proj, "init", "--no-scm", "-q")
        self.cmd(proj, "config", "core.analytics", "false")

    def add(self, proj: Path, target: str) -> Sample:
        return self.cmd(proj, "add", "-q", target)

    def status(self, proj: Path) -> Sample:
        return self.cmd(proj, "status", "-q")  # -q: exit 1 unless up to date

    def checkout(self, proj: Path, mode: str) -> Sample:
        return self.cmd(proj, "checkout", "-q", "data.dvc")  # mode: cache.type, set before


def find_dvc(arg: str | None) -> list[str] | None:
    if arg:
        return [arg]
    exe = shutil.which("dvc")
    if exe:
        return [exe]
    try:
        import importlib.util

        if importlib.util.find_spec("dvc") is not None:
            return [sys.executable, "-m", "dvc"]
    except (ImportError, ValueError):
        pass
    return None


def find_pivot(arg: str | None) -> str:
    if arg:
        return arg
    for cand in (Path(sys.executable).parent / "pivot", ROOT / ".venv" / "bin" / "pivot"):
        if cand.exists():
            return str(cand)
    exe = shutil.which("pivot")
    if exe:
        return exe
    raise SystemExit("no `pivot` executable found; pass --pivot PATH")


# --------------------------------------------------------------------------- the run
@dataclass
class Results:
    s: dict[str, Series] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Series:
        return self.s.setdefault(key, Series())


def copy_inputs(src: Path, proj: Path, big_name: str) -> None:
    shutil.copyfile(src / big_name, proj / big_name)
    shutil.copytree(src / "data", proj / "data")


def bench_tools(
    src: Path,
    work: Path,
    pivot: Pivot,
    dvc: Dvc | None,
    repeats: int,
    nfiles: int,
    res: Results,
    log: Callable[[str], None],
) -> None:
    from pivot_store.repo import Repo  # in-process runs; imported before any timing

    big = "big.bin"
    tools: list[tuple[str, Pivot | Dvc]] = [("pivot", pivot)]
    if dvc is not None:
        tools.append(("dvc", dvc))

    # startup floor: `status` in an empty project (what every command pays)
    for name, tool in tools:
        tool.init(work / f"{name}-empty")
    for _ in range(repeats):
        for name, tool in tools:
            res[f"{name} startup"].add(tool.status(work / f"{name}-empty"))
    for name, _ in tools:
        rmtree(work / f"{name}-empty")

    # add: fresh project per repeat; the last one stays for status and checkout
    keep: dict[str, Path] = {}
    for r in range(repeats):
        order = tools if r % 2 == 0 else list(reversed(tools))
        for name, tool in order:
            proj = work / f"{name}-add-{r}"
            tool.init(proj)
            copy_inputs(src, proj, big)
            settle()
            res[f"{name} add big"].add(tool.add(proj, big))
            settle()
            res[f"{name} add dir"].add(tool.add(proj, "data"))
            if r == repeats - 1:
                keep[name] = proj
            else:
                rmtree(proj)
        log(f"  add repeat {r + 1}/{repeats} done")

    # the same folder add, in-process (no interpreter startup, imports warm)
    for r in range(repeats):
        proj = work / f"pivot-inproc-{r}"
        proj.mkdir()
        repo = Repo.init(proj)
        shutil.copytree(src / "data", proj / "data")
        settle()
        res["pivot add dir (in-process)"].add(
            run_inproc(lambda repo=repo, proj=proj: repo.track(proj / "data"))
        )
        if "state" in repo.__dict__:
            repo.state.close()
        rmtree(proj)

    # no-op status (one untimed warm-up each)
    pproj = keep["pivot"]
    for name, tool in tools:
        tool.status(keep[name])
    for _ in range(repeats):
        for name, tool in tools:
            res[f"{name} status"].add(tool.status(keep[name]))

    def status_inproc() -> None:
        repo = Repo(pproj)
        rows = repo.status()
        if "state" in repo.__dict__:
            repo.state.close()
        bad = [r for r in rows if r.status != "ok"]
        if bad:
            raise SystemExit(f"pivot status is not a no-op: {bad}")

    status_inproc()
    for _ in range(repeats):
        res["pivot status (in-process)"].add(run_inproc(status_inproc))

    # checkout of the folder after deleting it: hardlink, then copy
    for mode in ("hardlink", "copy"):
        if dvc is not None:
            dvc.cmd(keep["dvc"], "config", "cache.type", mode)
        for r in range(repeats):
            order = tools if r % 2 == 0 else list(reversed(tools))
            for name, tool in order:
                proj = keep[name]
                rmtree(proj / "data")
                settle()
                res[f"{name} checkout {mode}"].add(tool.checkout(proj, mode))
                got = count_files(proj / "data")
                if got != nfiles:
                    raise SystemExit(f"{name} checkout {mode} left {got} files, want {nfiles}")
            rmtree(pproj / "data")
            settle()

            def co(mode: str = mode) -> None:
                repo = Repo(pproj)
                repo.checkout(["data"], mode)

            res[f"pivot checkout {mode} (in-process)"].add(run_inproc(co))
            if count_files(pproj / "data") != nfiles:
                raise SystemExit(f"in-process checkout {mode} is incomplete")
        log(f"  checkout {mode} done")
    for proj in keep.values():
        rmtree(proj)


# --------------------------------------------------------------------------- report
def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def report(res: Results, args: argparse.Namespace, sizes: dict, have_dvc: bool) -> list[dict]:
    rows: list[dict] = []

    def row(op, piv, ref, ref_name, ratio, target, ok, note=""):
        rows.append(
            dict(
                op=op,
                pivot=piv,
                ref=ref,
                ref_name=ref_name,
                ratio=ratio,
                target=target,
                ok=ok,
                note=note,
            )
        )

    raw, piv = res["raw xxh64"], res["pivot hash_file"]
    gb = sizes["hash_bytes"] / 1e9
    speed = raw.wall / piv.wall
    row(
        f"hash {sizes['hash_mib']} MiB: hash_file vs raw xxh64",
        piv,
        raw,
        "raw loop",
        speed,
        ">= 0.90x speed",
        speed >= 0.9,
        f"{gb / piv.wall:.2f} vs {gb / raw.wall:.2f} GB/s",
    )

    def vs_dvc(op, pkey, dkey, limit, target_text, note=""):
        p, d = res[pkey], res[dkey] if have_dvc else None
        ratio = p.wall / d.wall if d is not None and d.wall else None
        ok = None if ratio is None or limit is None else ratio <= limit
        row(op, p, d, "dvc" if d is not None else "", ratio, target_text, ok, note)

    vs_dvc("startup: status in an empty project", "pivot startup", "dvc startup", None, "")
    vs_dvc(
        f"add {sizes['big_mib']} MiB file (CLI)",
        "pivot add big",
        "dvc add big",
        0.25,
        "<= 0.25x dvc",
    )
    vs_dvc(
        f"add {sizes['nfiles']} x {sizes['small']} B folder (CLI)",
        "pivot add dir",
        "dvc add dir",
        0.30,
        "<= 0.30x dvc",
    )
    vs_dvc(
        "  same, in-process",
        "pivot add dir (in-process)",
        "dvc add dir",
        None,
        "",
        "no interpreter startup",
    )
    vs_dvc("status, nothing changed (CLI)", "pivot status", "dvc status", 0.30, "<= 0.30x dvc")
    vs_dvc(
        "  same, in-process",
        "pivot status (in-process)",
        "dvc status",
        None,
        "",
        "anchor <= 0.05 s",
    )
    for mode in ("hardlink", "copy"):
        vs_dvc(
            f"checkout folder, {mode} (CLI)",
            f"pivot checkout {mode}",
            f"dvc checkout {mode}",
            None,
            "<= 0.1 s" if mode == "hardlink" else "",
        )
        vs_dvc(
            "  same, in-process",
            f"pivot checkout {mode} (in-process)",
            f"dvc checkout {mode}",
            None,
            "<= 0.1 s" if mode == "hardlink" else "",
            "no interpreter startup" if mode == "hardlink" else "anchor <= 0.5 s",
        )
    for r in rows:  # absolute targets
        if r["target"] == "<= 0.1 s":
            r["ok"] = r["pivot"].wall <= 0.1

    head = (
        f"{'operation':<44} {'pivot s':>8} {'cpu s':>6} {'ref s':>8} {'cpu s':>6} "
        f"{'ratio':>7}  {'target':<15} {'result':<6} note"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        p, ref = r["pivot"], r["ref"]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        verdict = {True: "MET", False: "MISSED", None: ""}[r["ok"]]
        note = r["note"]
        if ref is not None and r["ref_name"] == "raw loop":
            note = f"ref = raw loop; ratio = pivot speed / raw speed; {note}"
        print(
            f"{r['op']:<44} {fmt(p.wall):>8} {fmt(p.cpu, 2) if p.cpu else '-':>6} "
            f"{fmt(ref.wall) if ref else '-':>8} "
            f"{fmt(ref.cpu, 2) if ref is not None and ref.cpu else '-':>6} "
            f"{ratio:>7}  {r['target']:<15} {verdict:<6} {note}"
        )
    print()
    print(
        "ratio = pivot time / dvc time (lower is better) unless noted; "
        f"medians of {args.repeats} runs; cpu = user+sys of the child process"
    )
    if not have_dvc:
        print("dvc not found: pass --dvc PATH (e.g. /tmp/dvcvenv/bin/dvc) for the ratio columns")
    if args.quick:
        print("--quick: reduced sizes, figures are NOT comparable to the targets")
    print("\nall runs (min-max wall s):")
    for k, s in res.s.items():
        print(f"  {k:<38} n={len(s.samples)}  {s.spread()}")
    return [
        {
            "operation": r["op"],
            "pivot_s": r["pivot"].wall,
            "pivot_cpu_s": r["pivot"].cpu,
            "ref": r["ref_name"],
            "ref_s": r["ref"].wall if r["ref"] is not None else None,
            "ratio": r["ratio"],
            "target": r["target"],
            "met": r["ok"],
        }
        for r in rows
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scratch", default=None, help="parent folder for scratch files")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--dvc", default=None, help="path to the dvc executable")
    ap.add_argument("--pivot", default=None, help="path to the pivot executable")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure (>= 3)")
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (figures are medians)")

    if args.quick:
        sizes = dict(hash_mib=64, big_mib=32, nfiles=200, small=4096)
    else:
        sizes = dict(hash_mib=1024, big_mib=512, nfiles=2000, small=4096)
    sizes["hash_bytes"] = sizes["hash_mib"] * MIB

    if args.scratch:
        Path(args.scratch).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pivot-bench-", dir=args.scratch)).resolve()
    env = dict(os.environ)
    env.update(
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(scratch / "dvc_site_cache"),
        DVC_GLOBAL_CONFIG_DIR=str(scratch / "dvc_global_config"),
        DVC_SYSTEM_CONFIG_DIR=str(scratch / "dvc_system_config"),
        COLUMNS="200",
    )
    pivot = Pivot(find_pivot(args.pivot), env)
    dvc_argv = find_dvc(args.dvc)
    dvc = Dvc(dvc_argv, env) if dvc_argv else None

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "xxhash": xxhash.VERSION,
        "pivot": pivot.exe,
        "dvc": f"{' '.join(dvc.argv)} ({dvc.version()})" if dvc else None,
        "scratch": str(scratch),
        "load_at_start": os.getloadavg(),
        **{k: v for k, v in sizes.items() if k != "hash_bytes"},
        "repeats": args.repeats,
    }
    print("# bench/store.py", json.dumps(info))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    res = Results()
    try:
        log(f"hashing a {sizes['hash_mib']} MiB file")
        hpath = scratch / "hash.bin"
        write_random(hpath, sizes["hash_bytes"])
        settle()
        raw, piv = bench_hash(hpath, args.repeats)
        res.s["raw xxh64"], res.s["pivot hash_file"] = raw, piv
        hpath.unlink()

        log(f"inputs: {sizes['big_mib']} MiB file, {sizes['nfiles']} x {sizes['small']} B files")
        src = scratch / "src"
        src.mkdir()
        write_random(src / "big.bin", sizes["big_mib"] * MIB)
        make_small_files(src / "data", sizes["nfiles"], sizes["small"])
        work = scratch / "work"
        work.mkdir()
        bench_tools(src, work, pivot, dvc, args.repeats, sizes["nfiles"], res, log)
    finally:
        if args.keep:
            log(f"scratch kept: {scratch}")
        else:
            rmtree(scratch)

    load_end = os.getloadavg()
    print(f"# load at end: {load_end}")
    busy = max(info["load_at_start"][0], load_end[0]) > 0.75 * (os.cpu_count() or 1)
    if busy:
        print("! other work shared the machine (1-min load above 0.75 x cpus): figures are noisy")
    table = report(res, args, sizes, dvc is not None)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "rows": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
