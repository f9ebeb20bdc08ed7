"""SIGKILL during `pivot push`, `pivot fetch` and `pivot pull`, in a loop (issue 7).

A pre-imported parent (the zygote below) forks each victim, so a kill lands
in the transfer rather than in Python's start-up; the test kills it after a
random delay (at least 50 kills that hit a live process), then checks:

- the remote, read directly: every object hashes to its name, and every
  run-cache entry names objects that are there (objects before entries);
- the local cache: every object under a final name hashes to its name;
- the next run (in this process) completes, and leaves everything in place.

Each push round uses a fresh remote prefix and each fetch/pull round an
empty cache, so every kill interrupts real work.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pivot_store.objects import ObjectStore
from tests.fixtures.s3 import remote_options
from tests.store.test_remote_faults import check_remote, remote_keys

ROOT = Path(__file__).resolve().parents[2]
KILLS = 52
BUDGET_S = 300.0  # a safety cap only; about 45 s on a quiet 2-core machine
pytestmark = [pytest.mark.slow]


class Zygote:
    """`python -m tests.store.test_remote_sigkill`: forks `main(args)` in `cwd` on request."""

    def __init__(self) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tests.store.test_remote_sigkill"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.p.stdout.readline().strip() == "ready"  # type: ignore[union-attr]

    def spawn(self, cwd: Path, args: list[str]) -> int:
        self.p.stdin.write(json.dumps({"cwd": str(cwd), "args": args}) + "\n")  # type: ignore[union-attr]
        self.p.stdin.flush()  # type: ignore[union-attr]
        return int(self.p.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.p.stdin.close()  # type: ignore[union-attr]
        self.p.wait(10)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False  # gone (or vanishing while /proc was read)


def _kill(pid: int) -> bool:
    """SIGKILL `pid`; True if it was still running. Returns once it is gone."""
    live = _alive(pid)
    if live:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            live = False
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    return live


def _set_remote(project: Path, url: str, endpoint: str) -> None:
    from pivot_store.config import Config, RemoteConfig, save_config

    cfg = RemoteConfig(url=url, **remote_options(endpoint))
    save_config(project / ".pivot" / "config.yaml", Config(remotes={"o": cfg}, default_remote="o"))


def test_sigkill_loop_push_fetch_pull(
    project: Path,
    s3_server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pivot_store.cli.app import main

    rng = random.Random(7)
    assert main(["init"]) == 0
    (project / "table.csv").write_bytes(os.urandom(100_000))
    (project / "one.bin").write_bytes(os.urandom(5000))
    folder = project / "images"
    folder.mkdir()
    for i in range(24):
        (folder / f"i{i:03d}.bin").write_bytes(os.urandom(1500) + bytes([i]))
    assert main(["add", "table.csv", "one.bin", "images"]) == 0
    n_objects = 3 + 24  # two files, the manifest, its 24 files
    endpoint = s3_server.endpoint_url
    _set_remote(project, f"s3://{s3_bucket}/seed", endpoint)
    assert main(["push"]) == 0
    clone = tmp_path / "clone"
    (clone / ".pivot").mkdir(parents=True)
    import shutil

    shutil.copytree(project / ".pivot" / "stages", clone / ".pivot" / "stages")
    _set_remote(clone, f"s3://{s3_bucket}/seed", endpoint)
    cache = ObjectStore(clone / ".pivot" / "cache" / "files")

    zygote = Zygote()
    live = 0
    counts = {"push": 0, "fetch": 0, "pull": 0}
    midway = 0  # kills after the first object moved and before the last
    start = time.monotonic()
    try:
        for round_ in range(400):
            if live >= KILLS or time.monotonic() - start > BUDGET_S:
                break
            op = ("push", "fetch", "pull")[round_ % 3]
            if op == "push":
                prefix = f"p{round_}"
                _set_remote(project, f"s3://{s3_bucket}/{prefix}", endpoint)
                where = project
            else:
                shutil.rmtree(clone / ".pivot" / "cache", ignore_errors=True)
                for out in ("table.csv", "one.bin", "images"):
                    p = clone / out
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
                where = clone
            pid = zygote.spawn(where, [op, "-j", "8"])
            time.sleep(rng.uniform(0.05, 0.45))
            if _kill(pid):
                live += 1
                counts[op] += 1
            # After each kill: the remote and the cache hold only whole, consistent things.
            if op == "push":
                moved = sum(check_remote(s3_server, s3_bucket, prefix))
            else:
                moved = _check_cache_objects(cache)
            midway += 0 < moved < n_objects + (3 if op == "push" else 0)
            # ... and the next run completes.
            monkeypatch.chdir(where)
            capsys.readouterr()
            code = main([op, "-j", "8"])
            if code != 0:
                left = sorted(str(p.relative_to(where)) for p in where.rglob("*") if p.is_file())
                pytest.fail(
                    f"{op} after a kill (round {round_}) exited {code}: "
                    f"{capsys.readouterr().err.strip()}; files: {left[:20]}"
                )
            if op == "push":
                # + 3 entries, their 3 heads and the bucket's run-cache marker
                assert len(remote_keys(s3_server, s3_bucket, prefix)) == n_objects + 7
            else:
                assert _check_cache_objects(cache) == n_objects
    finally:
        zygote.close()
    elapsed = time.monotonic() - start
    print(
        f"\nsigkill loop: {live} kills of a live process {counts}, {midway} mid-transfer, "
        f"in {elapsed:.1f} s"
    )
    assert live >= 50, (live, counts)
    assert all(counts.values()), counts


def _check_cache_objects(cache: ObjectStore) -> int:
    """Like check_cache, but temp files of a killed process may remain (never final names)."""
    n = 0
    for oid in cache.iter_oids():
        assert cache.verify(oid), f"cache object {oid} is corrupt after a kill"
        n += 1
    return n


def _zygote() -> None:
    import s3fs  # noqa: F401  (pre-import what a push or pull needs)

    from pivot_store.cli.app import main

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(req["cwd"])
            code = 1
            try:
                code = main(req["args"])
            finally:
                os._exit(code or 0)
        print(pid, flush=True)


if __name__ == "__main__":
    _zygote()
