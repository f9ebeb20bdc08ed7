"""The range convention: one output for several partitions, stored one lock per partition.

A single-run backfill or a partition-range run hands the IO manager one
output for many partitions. Like `UPathIOManager`, pivot expects a dict
`{partition key: value}` with exactly the run's partition keys, and stores
each value as its own result with its own lock: the same locks that
single-partition runs write and downstreams read.

Recorded as computed, never as a cache entry: the range's body saw the whole
range, so pivot does not claim that a single-partition run would compute the
same value (a later single-partition `cached` run computes its own, then hits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dagster import MetadataValue, OutputContext

from pivot_dagster import asset_keys, formats, handoff
from pivot_dagster.engine import Engine
from pivot_store.errors import PivotError
from pivot_store.lockfile import FingerprintParts, Lock


def store_range(
    engine: Engine,
    context: OutputContext,
    obj: Any,
    *,
    run_id: str | None,
    plain_parts: Callable[[Any], FingerprintParts],
    forced_format: str | None,
    write_through: Callable[[Lock], None],
) -> None:
    """Store `obj` (`{partition key: value}`) as one result per partition of the output.

    `plain_parts(partition key)` gives each partition's provenance parts,
    `write_through(lock)` sends each result where the IO manager's settings say.
    """
    pkeys = list(context.asset_partition_keys)
    key = context.asset_key.to_user_string()
    if not (isinstance(obj, dict) and set(obj) == set(pkeys)):
        raise PivotError(
            f"{key}: one output covers {len(pkeys)} partitions",
            "return a dict {partition key: value} with one value per partition, or "
            "launch the backfill with a multi-run backfill policy (one run per partition)",
        )
    origin = handoff.origin_for(run_id, context.output_metadata or {})
    hashes = {}
    for pk in pkeys:
        name = asset_keys.lock_name(context.asset_key, pk)
        handler = formats.choose(obj[pk], forced_format)
        lock = engine.save_computed(
            name, plain_parts(pk), obj[pk], handler, context.name, run_cache=False, origin=origin
        )
        write_through(lock)
        hashes[pk] = lock.outputs[0].hash
    context.add_output_metadata({handoff.PARTITION_HASHES_KEY: MetadataValue.json(hashes)})
    context.log.info(f"pivot: stored {key} for {len(pkeys)} partitions, one lock each")
