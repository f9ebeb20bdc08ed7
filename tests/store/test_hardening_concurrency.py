"""Contract line 5: many processes on one store, no lost writes, no torn objects, no errors.

Real processes (`python -m tests.store.hardening_procs ...`) run `pivot add`,
`pivot checkout` and `pivot gc --grace 0` against one project at once; writers
race a gc loop. Figures are printed (run with -s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pivot_store.integrity import verify
from pivot_store.lockfile import read_lock
from pivot_store.repo import Repo
from tests.store import hardening_procs as procs
from tests.store.conftest import ROOT

pytestmark = [pytest.mark.slow]
#: Rounds of 2 s the control may take to see the race it guards against.
RACE_ROUNDS = 5


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.hardening_procs", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _collect(ps: list[subprocess.Popen[str]]) -> list[dict]:
    results = []
    for p in ps:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _every_lock_parses(repo: Repo) -> list:
    locks = []
    for path in sorted(repo.stages_dir.rglob("*.lock")):
        locks.append(read_lock(path))  # raises LockError on a torn or invalid lock
    return locks


def _seed(project: Path) -> None:
    for rel in procs.FILES:
        procs.put(project, rel, procs.content(rel, 0))
    for d in procs.DIRS:
        for name in procs.DIR_FILES:
            procs.put(project, f"{d}/{name}", procs.content(f"{d}/{name}", 0))


def _strays_a_worker_wrote(repo: Repo) -> list[str]:
    """Remove, and return, folder files the final lock does not list.

    Two `pivot add`s of one folder may write their locks in the other order than
    they hashed it, so the last lock can miss a file a worker put there. Checkout
    deletes only what a folder's previous lock listed (never an unknown file), so
    such a file stays: it must be exactly bytes a worker wrote, under a name
    workers use; anything else is a torn or foreign file and fails the test.
    """
    strays = []
    for d in procs.DIRS:
        lock = read_lock(repo.lock_path(d))
        listed = {e.path for e in repo.manifest(lock.outputs[0].hash).entries}
        for f in sorted((repo.root / d).rglob("*")):
            rel = f.relative_to(repo.root / d).as_posix()
            if f.is_dir() or rel in listed:
                continue
            full = f"{d}/{rel}"
            assert rel in procs.DIR_FILES, full
            assert f.read_bytes() in {procs.content(full, v) for v in range(4)}, full
            f.unlink()
            strays.append(full)
    return strays


def test_eight_processes_add_checkout_gc_on_one_store(repo: Repo, cli) -> None:
    _seed(repo.root)
    ps = [_spawn("mixed", str(repo.root), str(w), "6") for w in range(8)]
    results = _collect(ps)
    errors = [e for r in results for e in r["errors"]]
    totals = {k: sum(r["ops"][k] for r in results) for k in ("add", "checkout", "gc")}
    code, _, err = cli("checkout")  # a final checkout settles the workspace
    assert code == 0, err
    fresh = Repo(repo.root)
    strays = _strays_a_worker_wrote(fresh)
    res = verify(fresh.objects)
    locks = _every_lock_parses(fresh)
    rows = fresh.status()
    print(
        f"\n[concurrency] 8 processes x 6 s: {totals} ops, {len(errors)} errors;"
        f" verify checked {res.checked} objects, {len(res.corrupt)} corrupt;"
        f" {len(locks)} locks, {len(rows)} outputs; {len(strays)} stray files kept by checkout"
    )
    assert errors == []
    assert res.corrupt == []
    assert len(locks) == len(procs.FILES) + len(procs.DIRS)
    assert rows and all(r.status == "ok" for r in rows), (rows, strays)
    for lock in locks:  # every object a lock needs is there (dirs: their files too)
        for out in lock.outputs:
            assert all(fresh.objects.exists(o) for o in fresh.output_oids(out))


def test_gc_never_collects_an_object_a_writer_just_added(repo: Repo) -> None:
    writers = [_spawn("race_writer", str(repo.root), str(w), "5", "hold") for w in range(6)]
    gcs = [_spawn("race_gc", str(repo.root), "5") for _ in range(2)]
    wres, gres = _collect(writers), _collect(gcs)
    fresh = Repo(repo.root)
    locks = _every_lock_parses(fresh)
    missing = [o.hash for lock in locks for o in lock.outputs if not fresh.objects.exists(o.hash)]
    res = verify(fresh.objects)
    written = sum(r["locks_written"] for r in wres)
    lost = sum(r["lost"] for r in wres)
    print(
        f"\n[gc race] {written} locks written under the shared hold by 6 writers,"
        f" {sum(r['gc_runs'] for r in gres)} gc --grace 0 runs removed"
        f" {sum(r['removed'] for r in gres)} superseded objects;"
        f" {lost} objects lost right after their lock was written;"
        f" {len(locks)} locks checked at the end, {len(missing)} objects missing,"
        f" {len(res.corrupt)} corrupt"
    )
    assert lost == 0
    assert written > 50 and sum(r["gc_runs"] for r in gres) > 10
    assert missing == []
    assert res.corrupt == []


def test_the_race_is_real_without_the_hold(repo: Repo) -> None:
    """Control: the same writers without `repo.writing()` do lose objects to gc.

    Shows the race test above has teeth: a lucky schedule may lose nothing in one
    round, so rounds repeat (at most ROUNDS) until a loss is seen; none in all of
    them means the race this hold prevents is not there to prevent.
    """
    rounds: list[tuple[int, int]] = []
    for _ in range(RACE_ROUNDS):
        writers = [_spawn("race_writer", str(repo.root), str(w), "2", "nohold") for w in range(3)]
        gcs = [_spawn("race_gc", str(repo.root), "2")]
        wres = _collect(writers)
        _collect(gcs)
        rounds.append((sum(r["lost"] for r in wres), sum(r["locks_written"] for r in wres)))
        if rounds[-1][0]:
            break
    print(f"\n[gc race control] without the hold, (lost, written) per round: {rounds}")
    assert any(lost for lost, _ in rounds), (
        f"no write lost an object to gc in {len(rounds)} rounds without the hold: {rounds}"
    )
