"""Resolve a run's chain of remote hits at once, so its later steps hit locally.

A deployment with an empty `.pivot/` reusing another's results through the
remote would otherwise pay, step after step, a LIST and a GET of the step's
run-cache entry, then the download of its objects. Instead the first `cached`
step of a run (in any process) that asks the remote computes the
fingerprints of every asset the run materializes, level by level (a
downstream's fingerprint needs its upstreams' output hashes, which a remote
hit names), and looks each level's entries up concurrently. The lookups are
kept as the run's `remote_hits.Table`, so each later step's own lookup is
answered from it; the chosen entries' objects are downloaded behind the
steps, in step order (each as soon as its lookup is in), as many at once as
the remote's `jobs`, and each step waits only for its own. When the run's
steps all run in this process (Dagster's in-process executor) the table is
built in a thread of its own and its objects come two at a time
(`prefetch_downloads.IN_ORDER_JOBS`): a step then waits only for its own
lookup, not for the whole chain's.
A run whose steps all hit locally never builds the table (`cached` only
arms it, `remote_hits.lookup` builds it on its first use).

Only a cache warmer, never a decision: each step still computes its own
fingerprint and runs every check of a remote hit itself (`remote_hits.find`:
format, pickle trust, signed digests, max_age in `explain.decide`); the table
is keyed by (lock name, fingerprint), so a prediction that differs from what
the step computes (a run config the prefetch read differently, an upstream
that turned out a miss) is simply never used. A stale result cannot come
from here; a wrong guess costs a wasted lookup or download. A remote miss
is not kept: its step asks again.

What is predicted: an asset the run materializes, cached by pivot (one key,
no selected checks) on the same IO manager as the first step, whose
upstreams inside the run were predicted hits; its config is the run's
(defaults filled in), its partition the run's. Everything else (a miss, a
refresh, a multi-asset, remote-first mode, where steps share no disk) is
left to its step.

Concurrent step processes (the multiprocess executor) prefetch once per run:
the first holds `.pivot/tmp/prefetch/<xxh64(run id)>.lock` (a single flight)
while it builds the table and until its downloads are over, and writes the
table beside as JSON; the others wait, then read it (every row checked: the
entry id must be the hash of the lock it holds, for the name and
fingerprint it is filed under). Tables older than a day are removed by the
next prefetch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from pivot_dagster import asset_keys, explain, fingerprint, formats, inputs, instance_walk
from pivot_dagster.engine import Engine
from pivot_dagster.prefetch_downloads import Downloads
from pivot_dagster.prefetch_table import read_table, remove_old, table_bytes
from pivot_dagster.remote_hits import Table, table_for, use_table
from pivot_store import atomic, flight, keys, run_lookup, runcache
from pivot_store.errors import PivotError
from pivot_store.hashing import hash_bytes
from pivot_store.lockfile import FingerprintParts, Lock

WAIT_S = 600.0  # how long a step waits for another process's prefetch of its run
LOOKUP_JOBS = 16
IN_PROCESS = ("in_process", "execute_in_process_executor")  # Dagster's executor names
_LOCAL = "local"  # `_Predictor._ask`: the result is already here, predicted without a lookup
log = logging.getLogger("pivot")


class _Ask(NamedTuple):
    key: Any  # AssetKey
    name: str  # lock name
    fp: str
    expected: formats.Expected
    max_age: Any


def warm(ctx: Any, io: Any) -> None:
    """Called by `cached` before its own lookup: this run's table of remote lookups, built
    when a step of the run first asks the remote (`remote_hits.lookup`), never before."""
    engine: Engine = io.engine()
    remote = engine.pull_remote
    if remote is None or io.remote_first:
        return
    table = table_for(engine.repo.root, remote)
    if table is None or table.run_id != ctx.run_id:
        table = Table(ctx.run_id, background=_in_process(ctx))
        use_table(engine.repo.root, remote, table)
    if not table.built:
        # Pending: built from the step that first needs it (its context is current).
        table.build = lambda t: _fill(t, ctx, io, engine, remote)


def _in_process(ctx: Any) -> bool:
    """Whether the run's steps all run in this process (its executor is Dagster's
    in-process one): then it outlives every step, and the table can be built behind
    them. Any other executor's step process may exit as soon as its step is over."""
    step = ctx.op_execution_context._step_execution_context  # internal: the job
    return getattr(step.job_def.executor_def, "name", None) in IN_PROCESS


def _fill(table: Table, ctx: Any, io: Any, engine: Engine, remote: str) -> None:
    try:
        _shared(table, ctx, io, engine, remote)
    except Exception as e:  # a warmer only: the step looks its result up itself
        _say(ctx, f"pivot: prefetch of this run's remote hits skipped: {e}", warning=True)


def _say(ctx: Any, message: str, warning: bool = False) -> None:
    """To the run's log, from the build's thread (the step that started it may be over;
    the run too, if a step failed: then to pivot's logger)."""
    try:
        (ctx.log.warning if warning else ctx.log.info)(message)
    except Exception:
        log.log(logging.WARNING if warning else logging.INFO, message)


def _shared(table: Table, ctx: Any, io: Any, engine: Engine, remote: str) -> None:
    """Fill the run's table: from the file another process wrote, else build and write it.

    The builder's objects are downloaded behind the steps (`Downloads`), each
    as soon as its hit is picked (while the rest of the chain is looked up),
    and the run's flight is held until they are all in, so the run's other
    processes, which wait for it, never download them a second time.
    """
    folder = keys.scratch_dir(engine.repo.pivot_dir, "prefetch")
    stem = hash_bytes(ctx.run_id.encode())
    got = flight.claim(folder, stem, WAIT_S)
    release = got.release
    try:
        path = folder / f"{stem}.json"
        written = read_table(path, ctx.run_id, remote)
        if written is not None or got.timed_out:
            table.add(written.entries if written is not None else {})
            return
        remove_old(folder)
        behind = Downloads(table, engine.repo, remote)
        try:
            build(table, ctx, io, engine, remote, behind.submit)
            atomic.write_replace(path, table_bytes(table, remote), fsync=False)
        finally:
            if behind.chosen:
                behind.finish(release)
                release = _nothing
    finally:
        release()


def _nothing() -> None:
    pass


# --- what the run materializes, in levels ----------------------------------------
def selection(job: Any, run: Any) -> set[Any]:
    """The asset keys this run materializes: the job's, narrowed to the run's asset
    selection and (a re-execution) to its steps."""
    layer = job.asset_layer
    keys = set(layer.selected_asset_keys)
    if run.asset_selection:  # `materialize` records an empty one: the job's assets
        keys &= set(run.asset_selection)
    if run.step_keys_to_execute is not None:
        steps = set(run.step_keys_to_execute)
        keys = {k for k in keys if str(layer.get_op_output_handle(k).node_handle) in steps}
    return keys


def levels(graph: Any, keys: set[Any]) -> list[list[Any]]:
    """`keys` by depth inside the set: level 0 has no upstream in it, level n one at n-1."""
    depth: dict[Any, int] = {}
    for k in graph.toposorted_asset_keys:
        if k in keys:
            ups = [p for p in graph.get(k).parent_keys if p in keys and p != k]
            depth[k] = 1 + max((depth[p] for p in ups), default=-1)
    out: list[list[Any]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for k, d in depth.items():
        out[d].append(k)
    return out


# --- the build ----------------------------------------------------------------------
def build(
    table: Table, ctx: Any, io: Any, engine: Engine, remote: str,
    picked: Callable[[tuple[str, str, runcache.RunEntry]], None] = lambda hit: None,
) -> list[tuple[str, str, runcache.RunEntry]]:  # fmt: skip
    """Predict every level's hits and look each level up concurrently, into `table`;
    (lock name, fingerprint, entry) of each hit the steps will take, in level order.
    `picked` gets each hit as soon as it is known (its download can start)."""
    started = time.perf_counter()
    step = ctx.op_execution_context._step_execution_context  # internal: job, run config
    job, run = step.job_def, ctx.run
    graph = job.asset_layer.asset_graph
    keys = selection(job, run)
    predictor = _Predictor(ctx, io, engine, job, run)
    rem = engine.repo.remote(remote)
    opened = time.perf_counter()
    chosen: list[tuple[str, str, runcache.RunEntry]] = []
    asked = 0
    with instance_walk._partition_context(ctx.instance):
        for level in levels(graph, keys):
            asks = [a for a in (predictor.ask(k) for k in level) if a is not None]
            asked += len(asks)
            # Each hit as soon as its lookup is in (in step order): its download starts,
            # then its step may go on, without waiting for the rest of its level.
            for ask, entries in zip(asks, _lookups(rem, asks), strict=True):
                pick = predictor.pick(ask, entries)
                if pick is not None:
                    hit = (ask.name, ask.fp, pick)
                    picked(hit)  # first: a step woken by `add` then waits for its own
                    table.add({(ask.name, ask.fp): entries})
                    chosen.append(hit)
    took = time.perf_counter() - started
    size = sum(o.size or 0 for _, _, e in chosen for o in e.lock.outputs)
    _say(
        ctx,
        f"pivot: prefetched {len(chosen)} remote hit(s) of {len(keys)} asset(s) in this run"
        f" ({asked} looked up, {predictor.local} already local) from {remote!r} in"
        f" {took:.2f} s (remote opened {opened - started:.2f} s); their objects"
        f" ({size / 2**20:.1f} MiB) are downloaded behind the steps",
    )
    return chosen


class _Predictor:
    """What each step of the run will compute and find, asked before any of them runs."""

    def __init__(self, ctx: Any, io: Any, engine: Engine, job: Any, run: Any) -> None:
        op_ctx = ctx.op_execution_context
        self.io, self.engine, self.job, self.run = io, engine, job, run
        self.graph = job.asset_layer.asset_graph
        self.instance = ctx.instance
        self.io_key = ctx.assets_def.get_io_manager_key_for_asset_key(ctx.asset_key)
        self.partition = op_ctx.partition_key if op_ctx.has_partition_key else None
        self.ops = (run.run_config or {}).get("ops") or {}
        self.resources = (run.run_config or {}).get("resources")
        self.predicted: dict[str, Lock] = {}  # lock name -> the lock its step will write
        self.blocked: set[Any] = set()  # keys of the run whose result is not predicted
        self.local = 0

    def ask(self, key: Any) -> _Ask | None:
        """The lookup `key`'s step will make, or None (then its downstreams are not
        predicted either); a result already local is predicted without asking."""
        try:
            found = self._ask(key)
        except Exception as e:  # whatever it is, the step meets it and says so
            log.debug("pivot: prefetch does not predict %s: %s", key.to_user_string(), e)
            found = None
        if found is None:
            self.blocked.add(key)
        return found if isinstance(found, _Ask) else None

    def _ask(self, key: Any) -> _Ask | str | None:
        ad = self.graph.assets_def_for_key(key)
        fn = fingerprint.pivot_function(ad)
        if fn is None or len(ad.keys) != 1 or ad.check_keys:
            return None
        if ad.get_io_manager_key_for_asset_key(key) != self.io_key:
            return None
        if any(p in self.blocked for p in self.graph.get(key).parent_keys if p != key):
            return None
        if explain.refresh_requested(self.run.tags, key.to_user_string()):
            return None
        own = ad.partitions_def is not None
        if own and self.partition is None:
            return None  # a range run: not cached
        partition = self.partition if own else None
        parts = self._parts(ad, key, fn, partition)
        if parts is None or fingerprint.has_missing(parts):
            return None
        name = asset_keys.lock_name(key, partition)
        max_age = getattr(fn, "__pivot_max_age__", None)
        found = self.engine.find_local(name, parts)
        if found is not None:
            if explain.expiry(found.lock.origin, max_age) is not None:
                return None
            self.predicted[name] = found.lock
            self.local += 1
            return _LOCAL  # its step hits locally; nothing to ask
        expected = formats.expect.for_asset(ad, key, self.io.formats)
        return _Ask(key, name, parts.digest(name), expected, max_age)

    def _parts(self, ad: Any, key: Any, fn: Any, partition: Any) -> FingerprintParts | None:
        """The parts `cached`'s `_plan` will compute, with the predicted upstream locks."""
        cv, code, _, _ = instance_walk.outside_inputs(ad, key, fn)
        ok, params = run_params(ad, self.ops)
        if cv is None or not ok:
            return None
        params = fingerprint.without_keys(params, getattr(fn, "__pivot_exclude__", ()))
        extra = inputs.extra_parts(
            self.engine.repo,
            ad,
            inputs.declared(fn),
            asset_graph=self.graph,
            resource_defs=self.job.resource_defs,
            run_resources=self.resources,
            instance=self.instance,
        )
        predicted, source = self.predicted, extra["source"]

        def resolve(name: str, local: Lock | None) -> Lock | None:
            return predicted.get(name, local)  # an upstream hit of this run, else the lock

        def judge(up: Any, partition: Any, local: Any) -> str | None:
            # An upstream this run materializes through pivot: its step will find this
            # run's own record of it, so the instance is not asked (a query each).
            if asset_keys.lock_name(up, partition) in predicted:
                return None
            return source(up, partition, local)

        return instance_walk.outside_parts(
            self.graph,
            ad,
            key,
            partition,
            cv,
            params,
            self.engine.repo,
            code,
            {**extra, "resolve": resolve, "source": judge},
        )

    def pick(self, ask: _Ask, entries: run_lookup.Entries) -> runcache.RunEntry | None:
        """The entry the step will take (the first it does not refuse), now predicted."""
        for entry in entries:
            if self.engine.refusal(entry.lock, ask.expected) is None:
                if explain.expiry(entry.lock.origin, ask.max_age) is not None:
                    continue  # the head is the oldest: a newer entry may be fresh
                self.predicted[ask.name] = entry.lock
                return entry
        self.blocked.add(ask.key)
        return None


def run_params(ad: Any, ops: dict[str, Any]) -> tuple[bool, Any]:
    """(ok, op config) the run gives the asset: its `ops:` config with defaults filled in."""
    from dagster._config import process_config

    field = ad.op.config_field
    if field is None:
        return True, None
    given = (ops.get(ad.op.name) or {}).get("config")
    res = process_config(field.config_type, {} if given is None else given)
    return (True, res.value) if res.success else (False, None)


def _lookups(rem: Any, asks: list[_Ask]) -> Iterator[run_lookup.Entries]:
    """Each ask's entries, in order, each as soon as it is in; the lookups in flight
    together (one GET each on a remote with heads, else a LIST and GETs)."""

    def one(ask: _Ask) -> run_lookup.Entries:
        try:
            return run_lookup.lookup(rem, ask.name, ask.fp)
        except PivotError:
            return run_lookup.Entries([])  # the step asks again and reports it

    if len(asks) <= 1:
        yield from (one(a) for a in asks)
        return
    with ThreadPoolExecutor(min(len(asks), LOOKUP_JOBS), "pivot-prefetch") as pool:
        yield from pool.map(one, asks)
