"""pivot_dagster: the Dagster face of pivot_store (IO manager, `cached`, resource, sensors)."""

from pivot_dagster.asset_keys import lock_name as lock_name
from pivot_dagster.asset_keys import parse_lock_name as parse_lock_name
from pivot_dagster.cached import cached as cached
from pivot_dagster.cached import pivot_asset as pivot_asset
from pivot_dagster.explain import REFRESH_TAG as REFRESH_TAG
from pivot_dagster.handoff import CacheHit as CacheHit
from pivot_dagster.instance_walk import PushOutcome as PushOutcome
from pivot_dagster.instance_walk import pull_matching as pull_matching
from pivot_dagster.instance_walk import push_new_materializations as push_new_materializations
from pivot_dagster.io_manager import PivotIOManager as PivotIOManager
from pivot_dagster.remote_first import resolve_upstream as resolve_upstream
from pivot_dagster.resource import PivotStoreResource as PivotStoreResource
from pivot_dagster.sensors import pivot_pull_sensor as pivot_pull_sensor
from pivot_dagster.sensors import pivot_push_sensor as pivot_push_sensor

__all__ = [
    "REFRESH_TAG",
    "CacheHit",
    "PivotIOManager",
    "PivotStoreResource",
    "PushOutcome",
    "cached",
    "lock_name",
    "parse_lock_name",
    "pivot_asset",
    "pivot_pull_sensor",
    "pivot_push_sensor",
    "pull_matching",
    "push_new_materializations",
    "resolve_upstream",
]
