"""Dagster's `decorators_tests/test_asset_check_decorator.py` cases that read an asset's
value, ported to our three setups: an `@asset_check` loads the stored value through
the IO manager, so its verdict shows the value it got (on the hit too, with
`cached`). The decorator's definition-time cases (names, specs, errors raised
while building definitions) never reach an IO manager and are left out.
"""

from typing import Any

import pytest
from dagster import AssetCheckResult, AssetIn, asset_check

from tests.dagster.parity import Setup


def _twice(s: Setup, assets: list[Any], **kw: Any) -> list[Any]:
    """Run once, and again in the cached setup (its second run may hit); both results."""
    return [s.materialize(assets, **kw) for _ in range(2 if s.is_cached else 1)]


@pytest.mark.parametrize("value", [3, 11])
def test_check_loads_the_asset_value(io_setup: Setup, value: int) -> None:
    """`test_asset_check_with_asset_value` style: an `@asset_check` with the asset as its
    input reads the stored value through the IO manager, and its verdict follows it."""
    s = io_setup

    @s.asset
    def checked_asset() -> int:
        return value

    @asset_check(asset=checked_asset)
    def under_ten(checked_asset: int) -> AssetCheckResult:
        return AssetCheckResult(passed=checked_asset < 10, metadata={"seen": checked_asset})

    for r in _twice(s, [checked_asset, under_ten]):
        (ev,) = r.get_asset_check_evaluations()
        assert ev.passed is (value < 10) and ev.metadata["seen"].value == value


def test_check_with_additional_ins(io_setup: Setup) -> None:
    """`test_additional_ins`: a check reads another asset through `additional_ins`."""
    s = io_setup

    @s.asset
    def asset1() -> int:
        return 5

    @s.asset
    def asset2() -> int:
        return 4

    @asset_check(asset=asset1, additional_ins={"asset2": AssetIn()})
    def check1(asset1: int, asset2: int) -> AssetCheckResult:
        return AssetCheckResult(passed=asset1 == 5 and asset2 == 4)

    for r in _twice(s, [asset1, asset2, check1]):
        (ev,) = r.get_asset_check_evaluations()
        assert ev.passed


def test_blocking_check_stops_the_downstream(io_setup: Setup) -> None:
    """`test_blocking`: a failed blocking check fails the run; the downstream never runs."""
    s = io_setup
    ran: list[int] = []

    @s.asset
    def upstream() -> int:
        return 1

    @asset_check(asset=upstream, blocking=True)
    def never_passes(upstream: int) -> AssetCheckResult:
        return AssetCheckResult(passed=False)

    @s.asset
    def downstream(upstream: int) -> int:
        ran.append(upstream)
        return upstream

    r = s.materialize([upstream, never_passes, downstream], raise_on_error=False)
    assert not r.success and ran == []
    (ev,) = r.get_asset_check_evaluations()
    assert not ev.passed
