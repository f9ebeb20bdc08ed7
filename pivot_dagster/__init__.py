"""pivot_dagster: the Dagster face of pivot_store (IO manager, `cached`, resource)."""

from pivot_dagster.asset_keys import lock_name as lock_name
from pivot_dagster.asset_keys import parse_lock_name as parse_lock_name
from pivot_dagster.cached import cached as cached
from pivot_dagster.decorators import pivot_asset as pivot_asset
from pivot_dagster.io_manager import PivotIOManager as PivotIOManager
from pivot_dagster.resource import PivotStoreResource as PivotStoreResource
from pivot_dagster.types import CacheHit as CacheHit

__all__ = [
    "CacheHit",
    "PivotIOManager",
    "PivotStoreResource",
    "cached",
    "lock_name",
    "parse_lock_name",
    "pivot_asset",
]
