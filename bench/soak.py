"""Soak: N minutes of mixed materialize/push/pull/gc/verify against moto, with faults injected.

A ThreadedMotoServer on 127.0.0.1 (free port) with the fault-injecting proxy
of `tests/fixtures/faulty_proxy.py` in front; both deployments talk to S3
only through the proxy. Deployment A is one project shared by every worker;
deployment B is one shared project plus fresh projects made on the fly. Each
worker is a process with its own Dagster instances and a seeded RNG, looping
until the deadline over a weighted mix of:

- `materialize_a`: a small `pivot_asset` graph in A with a random `k` (some
  runs miss, some hit the local or remote run-cache);
- `push_a`: `pivot_dagster.push_new_materializations` (the push sensor's function) or
  `transfer.push` of every lock in A (what `pivot push` does);
- `pull_b`: into B (shared or fresh): materialize (hits from the remote),
  `pivot_dagster.pull_matching` (the pull sensor's function), or `transfer.fetch` of
  B's locks (what `pivot fetch` does);
- `gc`: `gc --grace 0` in A or B; `verify`: `pivot verify` in A or B.

At the end, straight from moto (not through the proxy): every run-cache entry
on the remote must name objects that exist and hash to their names (folders:
the manifest and every file it lists), and every object under `files/` must
hash to its name; every lock (workspace and run-cache) in A and every B must
have its objects locally, verified. Prints operations per kind, failures
(transient / permanent / other), faults injected per kind (proxy tally),
retries seen (pivot's retry loop, s3fs's, botocore's), lost and corrupt
objects, wall time; exits 1 if anything was lost or corrupt. Not a test:

    .venv/bin/python bench/soak.py --minutes 2 [--fault-every 5] [--seed 0] [--workers 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dagster import Config, materialize  # noqa: E402

from pivot_dagster import PivotIOManager, pivot_asset  # noqa: E402

KEY = SECRET = "soak"
REGION = "us-east-1"
BUCKET = "soak"
PREFIX = "store"
KS = 6  # distinct configs: k in 0..KS-1
TRANSIENT_MODES = ("500", "503", "reset", "reset-after", "stall", "truncate")
OPS = {"materialize_a": 3, "push_a": 2, "pull_b": 3, "gc": 1, "verify": 1}

# --- the asset graph (module level: every worker process imports it) ------------------
_STATE: dict[str, Any] = {"project": None, "big_mib": 0}


class Knob(Config):
    k: int = 0


def _payload(k: int) -> bytes:
    import numpy as np

    size = 64 * 1024 * (k + 1)
    if k == 0 and _STATE["big_mib"]:
        size = _STATE["big_mib"] * 2**20  # one large object: multipart / ranged GETs
    return np.random.default_rng(k).bytes(size)


@pivot_asset
def base(config: Knob) -> bytes:
    return _payload(config.k)


@pivot_asset
def stats(base: bytes) -> dict:
    return {"n": len(base), "head": sum(base[:4096]), "tail": sum(base[-4096:])}


@pivot_asset
def table(base: bytes) -> Any:
    import pandas as pd

    view = base[: 8 * 2000]
    return pd.DataFrame({"i": range(len(view) // 8), "b": list(view[::8])})


@pivot_asset
def bundle(stats: dict) -> Path:
    """A folder output (a manifest plus files); same bytes for the same `k`."""
    out = Path(_STATE["project"]) / "out" / f"n{stats['n']}"
    out.mkdir(parents=True, exist_ok=True)
    files = {"stats.json": json.dumps(stats, sort_keys=True), "README.txt": "soak bundle\n"}
    for i in range(3):
        files[f"part{i}.txt"] = f"{stats['head'] * (i + 1)}\n" * 100
    for name, text in files.items():
        # Atomic: workspace files may be hard links to cache objects, and other
        # workers may write the same folder at once (same bytes).
        tmp = out / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)
    return out


ASSETS = [base, stats, table, bundle]


# --- counting retries ------------------------------------------------------------------
class _Tally(logging.Handler):
    """Counts log records by a short label (s3fs and botocore retries, pivot warnings)."""

    def __init__(self, counts: Counter) -> None:
        super().__init__(logging.DEBUG)
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        msg = str(record.msg)
        if record.name.startswith("s3fs"):
            if msg.startswith("Retryable error") or msg.startswith("Client error (maybe"):
                self.counts["s3fs retry"] += 1
        elif record.name.startswith("botocore"):
            if "Retry needed" in msg or "retrying request" in msg.lower():
                self.counts["botocore retry"] += 1
        elif record.name == "pivot" and record.levelno >= logging.WARNING:
            self.counts["pivot log warning"] += 1


def _instrument(counts: Counter) -> None:
    from pivot_store.remote import errors as remote  # where the retry loop looks it up

    orig = remote.classify

    def counting(exc: BaseException, rem: Any, what: str = "") -> BaseException:
        err = orig(exc, rem, what)
        if isinstance(err, remote.Transient):
            counts["pivot retry"] += 1  # each retry (or a final transient failure)
        return err

    remote.classify = counting
    handler = _Tally(counts)
    for name, level in (
        ("s3fs", logging.DEBUG),
        ("botocore.retryhandler", logging.DEBUG),
        ("botocore.retries.standard", logging.DEBUG),
        ("pivot", logging.WARNING),
    ):
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.addHandler(handler)
        lg.propagate = False


# --- one worker ------------------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _classify_text(text: str) -> str:
    low = text.lower()
    if "accessdenied" in low or "access denied" in low:
        return "permanent"
    if "hashes to" in low or "corrupt" in low:
        return "corrupt"
    transient = (
        "transient", "internalerror", "slowdown", "500", "503", "reset", "timeout", "timed out",
        "short read", "incompleteread", "connection", "serverdisconnected", "payload", "eio",
    )  # fmt: skip
    return "transient" if any(t in low for t in transient) else "other"


def _classify(exc: BaseException) -> str:
    from pivot_store.errors import CorruptObject, RemoteError
    from pivot_store.remote import Transient

    chain = _chain(exc)
    if any(isinstance(e, CorruptObject) for e in chain):
        return "corrupt"
    if any(isinstance(e, RemoteError) for e in chain):
        return "permanent"
    if any(isinstance(e, Transient) for e in chain):
        return "transient"
    return _classify_text(" | ".join(f"{type(e).__name__}: {e}" for e in chain))


class Worker:
    def __init__(self, wid: int, cfg: dict[str, Any]) -> None:
        from dagster import DagsterInstance

        self.wid = wid
        self.cfg = cfg
        self.rng = random.Random(cfg["seed"] * 1000 + wid)
        self.scratch = Path(cfg["scratch"])
        home = self.scratch / f"worker{wid}"
        home.mkdir(parents=True, exist_ok=True)
        for sub in ("dagster-a", "dagster-b"):
            (home / sub).mkdir(exist_ok=True)
        self.inst_a = DagsterInstance.local_temp(str(home / "dagster-a"))
        self.inst_b = DagsterInstance.local_temp(str(home / "dagster-b"))
        self.cursor: dict[str, int] = {}
        self.ops: Counter = Counter()
        self.fail: Counter = Counter()
        self.counts: Counter = Counter()
        self.examples: list[str] = []
        self.fresh = 0
        self.label = ""
        _instrument(self.counts)

    # helpers
    def _repo(self, project: Path) -> Any:
        from pivot_store.repo import Repo

        return Repo.open(project)

    def _remote(self, repo: Any) -> Any:
        from pivot_store.remote import open_remote

        return open_remote(repo.config, "s3")

    def _failed(self, op: str, kind: str, detail: str) -> None:
        self.fail[f"{op}:{kind}"] += 1
        if kind not in ("transient", "permanent") and len(self.examples) < 20:
            self.examples.append(f"[worker {self.wid}] {op} ({kind}): {detail[-1500:]}")

    def _materialize(self, project: Path, instance: Any) -> None:
        _STATE["project"] = str(project)
        k = self.rng.randrange(KS)
        io = PivotIOManager(project_dir=str(project))
        run_config = {"ops": {"base": {"config": {"k": k}}}}
        res = materialize(
            ASSETS, resources={"io_manager": io}, instance=instance, run_config=run_config
        )
        if not res.success:
            raise RuntimeError("materialize reported failure")

    def _b_project(self) -> Path:
        if self.rng.random() < 0.4:
            self.fresh += 1
            path = self.scratch / "B-fresh" / f"w{self.wid}-{self.fresh}"
            from pivot_store.config import Config, RemoteConfig

            repo = self._repo(path)
            rc = RemoteConfig(**self.cfg["remote"])
            repo.save_config(Config(remotes={"s3": rc}, default_remote="s3"))
            return path
        return Path(self.cfg["b"])

    # operations
    def op_materialize_a(self) -> str:
        self._materialize(Path(self.cfg["a"]), self.inst_a)
        return "materialize_a"

    def op_push_a(self) -> str:
        repo = self._repo(Path(self.cfg["a"]))
        if self.rng.random() < 0.5:
            from pivot_dagster import push_new_materializations

            self.label = "push_a(sensor)"
            out = push_new_materializations(self.inst_a, repo, "s3", self.cursor)
            self.cursor = out.cursor
            if out.failed:
                text = "; ".join(f"{k}: {v}" for k, v in sorted(out.failed.items()))
                raise _SoftFailure(text)
            return "push_a(sensor)"
        from pivot_store import transfer

        self.label = "push_a(pivot push)"
        res = transfer.push(repo.objects, self._remote(repo), list(repo.iter_locks()))
        res.raise_for_failures()
        return "push_a(pivot push)"

    def op_pull_b(self) -> str:
        project = self._b_project()
        how = self.rng.choice(["materialize", "materialize", "sensor", "fetch"])
        self.label = f"pull_b({how})"
        if how == "materialize":
            self._materialize(project, self.inst_b)
        elif how == "sensor":
            from dagster import Definitions

            from pivot_dagster import pull_matching

            _STATE["project"] = str(project)
            defs = Definitions(
                assets=ASSETS, resources={"io_manager": PivotIOManager(project_dir=str(project))}
            )
            for ev in pull_matching(defs, self._repo(project), "s3", instance=self.inst_b):
                self.inst_b.report_runless_asset_event(ev)
        else:
            from pivot_store import transfer

            repo = self._repo(project)
            res = transfer.fetch(repo.objects, self._remote(repo), list(repo.iter_locks()))
            res.raise_for_failures()
        return f"pull_b({how})"

    def op_gc(self) -> str:
        from pivot_store.cli.commands import collect_garbage

        which = self.rng.choice(["A", "B"])
        res = collect_garbage(
            self._repo(Path(self.cfg["a" if which == "A" else "b"])), grace_hours=0
        )
        self.counts["gc removed"] += len(res.removed)
        return f"gc --grace 0 ({which})"

    def op_verify(self) -> str:
        from pivot_store.integrity import verify

        which = self.rng.choice(["A", "B"])
        res = verify(self._repo(Path(self.cfg["a" if which == "A" else "b"])).objects)
        if res.corrupt:
            raise _CorruptFound(f"pivot verify in {which}: corrupt {res.corrupt}")
        return f"verify ({which})"

    def run(self) -> dict[str, Any]:
        names, weights = zip(*OPS.items(), strict=True)
        deadline = self.cfg["deadline"]
        while time.time() < deadline:
            op = self.rng.choices(names, weights)[0]
            self.label = op
            try:
                label = getattr(self, f"op_{op}")()
                self.ops[label] += 1
            except _CorruptFound as e:
                label = self.label
                self.ops[label] += 1
                self._failed(label, "corrupt", str(e))
            except _SoftFailure as e:
                label = self.label
                self.ops[label] += 1
                self._failed(label, _classify_text(str(e)), str(e))
            except Exception as e:
                label = self.label
                self.ops[label] += 1
                kind = _classify(e)
                self._failed(label, kind, "".join(traceback.format_exception(e)))
        return {
            "ops": dict(self.ops),
            "fail": dict(self.fail),
            "counts": dict(self.counts),
            "examples": self.examples,
        }


class _SoftFailure(Exception):
    """An operation that returned failures rather than raising."""


class _CorruptFound(Exception):
    """`pivot verify` found a corrupt object during the run."""


def _worker_main(wid: int, cfg: dict[str, Any], queue: Any) -> None:
    os.environ["DAGSTER_HOME"] = str(Path(cfg["scratch"]) / f"worker{wid}")
    # Dagster's run logs go to the worker's log file, not the summary's terminal.
    log = os.open(Path(cfg["scratch"]) / f"worker{wid}.log", os.O_WRONLY | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    _STATE["big_mib"] = cfg["big_mib"]
    logging.getLogger("dagster").setLevel(logging.ERROR)
    try:
        out = Worker(wid, cfg).run()
    except BaseException:
        out = {"crash": traceback.format_exc()}
    queue.put((wid, out))


# --- the final audit (straight from moto, not through the proxy) --------------------
def _audit_remote(s3: Any) -> dict[str, Any]:
    from pivot_store import oid as oids
    from pivot_store import runcache
    from pivot_store.errors import PivotError
    from pivot_store.hashing import hash_bytes
    from pivot_store.manifest import Manifest

    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    files = {k.rsplit("/", 2)[-2] + k.rsplit("/", 1)[-1]: k for k in keys if "/files/" in k}
    entries = [k for k in keys if k.startswith(f"{PREFIX}/runs/") and k.endswith(".json")]
    out: dict[str, Any] = {"objects": len(files), "entries": len(entries), "lost": [],
                           "corrupt": [], "bad_entries": [], "corrupt_any": []}  # fmt: skip
    cache: dict[str, bytes | None] = {}

    def get(o: str) -> bytes | None:
        if o not in cache:
            k = files.get(o)
            cache[o] = None if k is None else s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()
        return cache[o]

    def ok(o: str, data: bytes) -> bool:
        return hash_bytes(data) + (oids.DIR_SUFFIX if oids.is_dir(o) else "") == o

    for o in sorted(files):  # every object on the remote, named or not
        if not ok(o, get(o) or b""):
            out["corrupt_any"].append(o)
    for key in entries:
        stem = key.rsplit("/", 1)[-1][: -len(runcache.SUFFIX)]
        data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        try:
            entry = runcache.parse_entry(data, key, expected_id=stem)
        except PivotError as e:
            out["bad_entries"].append(f"{key}: {e}")
            continue
        for rec in entry.lock.outputs:
            named = [rec.hash]
            data = get(rec.hash)
            if data is not None and oids.is_dir(rec.hash) and ok(rec.hash, data):
                named += [e.hash for e in Manifest.from_bytes(data, rec.hash).files()]
            for o in named:
                got = get(o)
                if got is None:
                    out["lost"].append(f"{o} (entry {key})")
                elif not ok(o, got):
                    out["corrupt"].append(f"{o} (entry {key})")
    return out


def _audit_local(projects: list[Path]) -> dict[str, Any]:
    from pivot_store import oid as oids
    from pivot_store.integrity import verify
    from pivot_store.manifest import read_manifest
    from pivot_store.repo import Repo

    out: dict[str, Any] = {"projects": 0, "locks": 0, "lost": [], "corrupt": [], "checked": 0}
    for project in projects:
        repo = Repo.open(project, create=False)
        out["projects"] += 1
        objects = repo.objects
        for lock in (*repo.iter_locks(), *repo.iter_run_locks()):
            out["locks"] += 1
            for rec in lock.outputs:
                named = [rec.hash]
                if oids.is_dir(rec.hash) and objects.verify(rec.hash):
                    named += [e.hash for e in read_manifest(objects, rec.hash).files()]
                for o in named:
                    where = f"{o} ({project.name}: {lock.name})"
                    if not objects.exists(o):
                        out["lost"].append(where)
                    elif not objects.verify(o):
                        out["corrupt"].append(where)
        res = verify(objects)
        out["checked"] += res.checked
        out["corrupt"] += [f"{o} ({project.name}: pivot verify)" for o in res.corrupt]
    return out


# --- the driver --------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--fault-every", type=int, default=5, help="fail one request in N (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--modes", default=",".join(TRANSIENT_MODES),
                   help="proxy fault modes, cycled (add 403 for permanent faults)")  # fmt: skip
    p.add_argument("--stall", type=float, default=3.0, help="seconds a stalled request hangs")
    p.add_argument("--read-timeout", type=float, default=2.0, help="S3 read timeout (< stall)")
    p.add_argument("--big-mib", type=int, default=34, help="size of the k=0 object (0: small)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from pivot_store.config import Config, RemoteConfig
    from pivot_store.repo import Repo
    from tests.fixtures.faulty_proxy import FaultyProxy

    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(var, None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    t0 = time.perf_counter()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    direct = f"http://{host}:{port}"
    modes = [m for m in args.modes.split(",") if m]
    proxy = FaultyProxy(port, every=args.fault_every, modes=modes, stall=args.stall).start()
    s3 = boto3.client("s3", endpoint_url=direct, aws_access_key_id=KEY,
                      aws_secret_access_key=SECRET, region_name=REGION)  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    scratch = Path(tempfile.mkdtemp(prefix="pivot-soak-"))
    remote_cfg = {"url": f"s3://{BUCKET}/{PREFIX}", "endpoint_url": proxy.url, "key": KEY,
                  "secret": SECRET, "region": REGION, "read_timeout": args.read_timeout,
                  "connect_timeout": args.read_timeout}  # fmt: skip
    for name in ("A", "B"):
        repo = Repo.open(scratch / name)
        repo.save_config(Config(remotes={"s3": RemoteConfig(**remote_cfg)}, default_remote="s3"))
    cfg = {"seed": args.seed, "scratch": str(scratch), "a": str(scratch / "A"),
           "b": str(scratch / "B"), "remote": remote_cfg, "big_mib": args.big_mib,
           "deadline": time.time() + args.minutes * 60}  # fmt: skip
    print(f"soak: {args.workers} workers x {args.minutes:g} min, seed {args.seed}, one request in "
          f"{args.fault_every} fails ({','.join(modes)}); moto {direct}, proxy {proxy.url}; "
          f"scratch {scratch}", flush=True)  # fmt: skip

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(i, cfg, queue)) for i in range(args.workers)]
    for pr in procs:
        pr.start()
    results: dict[int, dict[str, Any]] = {}
    limit = cfg["deadline"] + 600
    while len(results) < len(procs) and time.time() < limit:
        try:
            wid, out = queue.get(timeout=5)
            results[wid] = out
        except Exception:
            if not any(pr.is_alive() for pr in procs) and queue.empty():
                break
    for pr in procs:
        pr.join(30)
        if pr.is_alive():
            pr.kill()
    wall = time.perf_counter() - t0
    faults = dict(proxy.faults)
    requests = proxy.requests
    proxy.stop()

    remote = _audit_remote(s3)
    projects = [scratch / "A", scratch / "B", *sorted((scratch / "B-fresh").glob("*"))]
    local = _audit_local([pj for pj in projects if (pj / ".pivot").is_dir()])
    server.stop()

    ops: Counter = Counter()
    fail: Counter = Counter()
    counts: Counter = Counter()
    examples: list[str] = []
    crashes = []
    for wid in range(len(procs)):
        out = results.get(wid)
        if out is None:
            crashes.append(f"worker {wid}: no result (killed or hung)")
            continue
        if "crash" in out:
            crashes.append(f"worker {wid}: {out['crash']}")
            continue
        ops.update(out["ops"])
        fail.update(out["fail"])
        counts.update(out["counts"])
        examples += out["examples"]

    lost = len(remote["lost"]) + len(local["lost"])
    corrupt = len(remote["corrupt"]) + len(remote["corrupt_any"]) + len(local["corrupt"])
    corrupt += sum(v for k, v in fail.items() if k.endswith(":corrupt"))
    rows: list[tuple[str, str]] = [("operations", "")]
    for label in sorted(ops):
        by = {kind: fail.get(f"{label}:{kind}", 0) for kind in
              ("transient", "permanent", "corrupt", "other")}  # fmt: skip
        failed = ", ".join(f"{v} {k}" for k, v in by.items() if v) or "0 failed"
        rows.append((f"  {label}", f"{ops[label]} ({failed})"))
    rows.append(("  total", str(sum(ops.values()))))
    totals = {kind: sum(v for k, v in fail.items() if k.endswith(":" + kind))
              for kind in ("transient", "permanent", "corrupt", "other")}  # fmt: skip
    rows.append(("failed operations", ", ".join(f"{v} {k}" for k, v in totals.items())))
    rows.append(("proxy requests", str(requests)))
    rows.append(("faults injected", f"{sum(faults.values())} ("
                 + ", ".join(f"{k} {v}" for k, v in faults.items()) + ")"))  # fmt: skip
    for name in ("pivot retry", "s3fs retry", "botocore retry", "pivot log warning",
                 "gc removed"):  # fmt: skip
        rows.append((name, str(counts.get(name, 0))))
    rows.append(("remote", f"{remote['entries']} run-cache entries, {remote['objects']} objects"
                 f", {len(remote['bad_entries'])} malformed entries"))  # fmt: skip
    rows.append(("local", f"{local['projects']} projects, {local['locks']} locks, "
                 f"{local['checked']} objects verified"))  # fmt: skip
    rows.append(("lost objects", str(lost)))
    rows.append(("corrupt objects", str(corrupt)))
    rows.append(("worker crashes", str(len(crashes))))
    rows.append(("wall time", f"{wall:.1f} s"))
    width = max(len(a) for a, _ in rows)
    print("-" * (width + 40))
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    print("-" * (width + 40))
    for title, items in (
        ("lost on remote", remote["lost"]), ("corrupt on remote (named)", remote["corrupt"]),
        ("corrupt on remote (any object)", remote["corrupt_any"]),
        ("malformed entries", remote["bad_entries"]), ("lost locally", local["lost"]),
        ("corrupt locally", local["corrupt"]), ("worker crashes", crashes),
        ("unexpected failures (first 20)", examples),
    ):  # fmt: skip
        if items:
            print(f"{title}:")
            for item in items[:20]:
                print(f"  {item}")
    if not args.keep and not (lost or corrupt or crashes):
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if lost or corrupt or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
