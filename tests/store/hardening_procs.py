"""Worker processes for the hardening tests (concurrency and SIGKILL loops).

Run as `python -m tests.store.hardening_procs <role> ...`. Every role works on a
real project folder through the same entry points a user has (`pivot` CLI's
`main()`, `Repo`), and reports what it did as one JSON line on stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

FILES = [f"data/f{i}.bin" for i in range(4)]
DIRS = ["data/d0", "data/d1"]
DIR_FILES = ["a", "b", "c", "d", "e"]


def content(name: str, version: int) -> bytes:
    """Deterministic bytes per (path, version): workers share objects, sizes cross MIN_SIZE."""
    rng = random.Random(f"{name}:{version}")
    size = rng.choice([0, 17, 3000, 70_000, 200_000])
    return rng.randbytes(size)


def put(project: Path, rel: str, data: bytes) -> None:
    """Write a workspace file the safe way (temp outside the tree + rename): never in place."""
    scratch = project / ".scratch"
    scratch.mkdir(exist_ok=True)
    tmp = scratch / f"w{os.getpid()}-{random.getrandbits(40):x}"
    tmp.write_bytes(data)
    dest = project / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def cli(*args: str) -> tuple[int, str]:
    from pivot_store.cli.app import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue()


# --- 8 processes: add / checkout / gc on one store -----------------------------
def mixed(project: Path, worker: int, seconds: float) -> dict:
    os.chdir(project)
    rng = random.Random(worker)
    ops = {"add": 0, "checkout": 0, "gc": 0}
    errors: list[str] = []
    end = time.monotonic() + seconds
    # Each worker's first op adds its own target, so every file and folder is
    # added at least once however slow a loaded machine makes the rest.
    forced = [(FILES + DIRS)[worker % (len(FILES) + len(DIRS))]]
    while time.monotonic() < end:
        op = "add" if forced else rng.choices(["add", "checkout", "gc"], [5, 3, 2])[0]
        if op == "add":
            first = forced.pop() if forced else None
            if first in FILES or (first is None and rng.random() < 0.6):
                target = first or rng.choice(FILES)
                put(project, target, content(target, rng.randrange(4)))
            else:
                target = first or rng.choice(DIRS)
                for name in rng.sample(DIR_FILES, 2):
                    rel = f"{target}/{name}"
                    if rng.random() < 0.2:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(project / rel)
                    else:
                        put(project, rel, content(rel, rng.randrange(4)))
            code, err = cli("add", target)
        elif op == "checkout":
            names = [] if rng.random() < 0.5 else [rng.choice(FILES + DIRS)]
            code, err = cli("checkout", *names)
            if code and "no lock named" in err and names:
                code = 0  # that path was never added yet: a correct refusal
        else:
            code, err = cli("gc", "--grace", "0")
        ops[op] += 1
        if code:
            errors.append(f"{op}: {err.strip()}")
    return {"worker": worker, "ops": ops, "errors": errors}


# --- gc racing writers that hold the shared lock ------------------------------
def race_writer(project: Path, worker: int, seconds: float, hold: bool) -> dict:
    from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
    from pivot_store.repo import Repo

    repo = Repo(project)
    rng = random.Random(worker)
    written = lost = 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        data = f"w{worker}-{i}-".encode() + rng.randbytes(rng.choice([10, 5000, 100_000]))
        ctx = repo.writing() if hold else contextlib.nullcontext()
        with ctx:
            added = repo.objects.add_bytes(data)
            shared = repo.objects.add_bytes(b"shared by every writer")  # exists: freshen path
            time.sleep(0.002)  # widen the window gc would need
            outs = [
                OutputRecord(name="result", hash=added.oid, size=added.size),
                OutputRecord(name="shared", hash=shared.oid, size=shared.size),
            ]
            name = f"race/w{worker}/{i % 3}"
            repo.write_lock(Lock.build(name, FingerprintParts(params={"i": i}), outs))
        written += 1
        # The lock just written names the object and only this writer replaces that
        # lock: whatever gc does now, the object must still be there.
        if not (repo.objects.exists(added.oid) and repo.objects.exists(shared.oid)):
            lost += 1
    return {"worker": worker, "locks_written": written, "lost": lost}


def race_gc(project: Path, seconds: float) -> dict:
    from pivot_store.cli.commands import collect_garbage
    from pivot_store.repo import Repo

    runs = removed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        res = collect_garbage(Repo(project), grace_hours=0)
        runs += 1
        removed += len(res.removed)
    return {"gc_runs": runs, "removed": removed}


# --- SIGKILL loops: a pre-imported parent forks victims ---------------------
def _victim(op: str, project: Path, seed: int) -> None:
    """Loop one operation forever (until killed); record any failure."""
    os.chdir(project)
    rng = random.Random(seed)
    log = project.parent / "victim_errors.log"
    while True:
        if op == "add_large":
            put(project, "big.bin", rng.choice(BIG_VERSIONS)(project))
            code, err = cli("add", "big.bin")
        elif op == "add_small":
            for _ in range(5):
                rel = f"many/{rng.randrange(200):03d}.txt"
                put(project, rel, f"{rel} {rng.randrange(10**9)}\n".encode() * rng.randrange(1, 40))
            code, err = cli("add", "many")
        elif op == "checkout":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(project / "big.bin")
            for _ in range(40):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(project / f"many/{rng.randrange(200):03d}.txt")
            put(project, "many/extra.txt", b"not in the lock")
            code, err = cli("checkout")
        elif op == "lock":
            code, err = _write_locks(project, rng)
        else:
            raise SystemExit(f"unknown op {op}")
        if code:
            with open(log, "a") as f:
                f.write(f"{op}: {err.strip()}\n")


def _big(n: int):
    def make(project: Path) -> bytes:
        base = (project.parent / "big.base").read_bytes()
        return n.to_bytes(4, "little") + base

    return make


BIG_VERSIONS = [_big(n) for n in range(3)]


def _write_locks(project: Path, rng: random.Random) -> tuple[int, str]:
    from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
    from pivot_store.repo import Repo

    repo = Repo(project)
    n = rng.randrange(1, 400)
    outs = [
        OutputRecord(name=f"o{k}", hash=f"{rng.getrandbits(64):016x}", size=k) for k in range(n)
    ]
    parts = FingerprintParts(params={"n": n, "text": "x" * rng.randrange(5000)})
    repo.write_lock(Lock.build(f"locks/l{rng.randrange(4)}", parts, outs))
    return 0, ""


def zygote() -> None:
    """Fork a victim per request: `run OP PROJECT SEED` -> pid; `wait PID` -> status."""
    # Pay the imports once, before forking.
    import pivot_store.cli.app
    import pivot_store.repo  # noqa: F401

    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "run":
            op, project, seed = args
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                try:
                    _victim(op, Path(project), int(seed))
                finally:
                    os._exit(3)
            print(pid, flush=True)
        elif cmd == "wait":
            _, status = os.waitpid(int(args[0]), 0)
            print(status, flush=True)


def main() -> None:
    role, *args = sys.argv[1:]
    if role == "zygote":
        zygote()
        return
    if role == "mixed":
        res = mixed(Path(args[0]), int(args[1]), float(args[2]))
    elif role == "race_writer":
        res = race_writer(Path(args[0]), int(args[1]), float(args[2]), args[3] == "hold")
    elif role == "race_gc":
        res = race_gc(Path(args[0]), float(args[1]))
    else:
        raise SystemExit(f"unknown role {role}")
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
