"""The handoff between `cached` and the IO manager, without a run: markers, keys, metadata."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import MetadataValue

from pivot_dagster import handoff
from pivot_dagster.handoff import CacheHit, Deferred, pivot_type
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord

PARTS = FingerprintParts(code_version="v1", params={"n": 2}, deps={"up": "0" * 16}, partition="a")
OUT = OutputRecord(hash="1" * 16, size=7, format="json")
LOCK = Lock.build("x/@a", PARTS, [OUT])


def test_computed_hit_and_pulled_metadata_share_one_shape(tmp_path: Path) -> None:
    """The keys and values the UI, the push sensor and remote-first mode read back."""
    where = tmp_path / "obj"
    computed = handoff.event_metadata(LOCK, OUT, where, hit=False)
    assert computed == {
        "pivot/hash": "1" * 16,
        "pivot/size": 7,
        "pivot/path": MetadataValue.path(str(where)),
        "pivot/format": "json",
        "pivot/fingerprint": LOCK.fingerprint,
        "pivot/cache_hit": False,
    }
    hit = handoff.event_metadata(LOCK, OUT, where, hit=True)
    assert hit == {**computed, "pivot/cache_hit": True}
    pulled = handoff.event_metadata(LOCK, OUT, where, hit=True, source="s3 (s3://b/p)")
    assert pulled == {**hit, "pivot/source": "s3 (s3://b/p)"}


def test_metadata_the_asset_set_itself_is_left_to_it(tmp_path: Path) -> None:
    meta = handoff.event_metadata(LOCK, OUT, tmp_path, hit=False, given={"pivot/format": "x"})
    assert "pivot/format" not in meta and meta["pivot/hash"] == "1" * 16


def test_a_format_less_output_records_an_empty_format(tmp_path: Path) -> None:
    out = OutputRecord(hash="2" * 16, size=1)
    assert handoff.event_metadata(LOCK, out, tmp_path, hit=False)["pivot/format"] == ""


def test_parts_travel_through_metadata_as_json() -> None:
    meta = handoff.parts_metadata(PARTS)
    assert list(meta) == [handoff.PARTS_KEY] == ["pivot/fingerprint_parts"]
    assert handoff.parts_from_metadata(meta) == PARTS
    # Once Dagster has serialized it, the value may come back as JSON text.
    assert handoff.parts_from_json(json.dumps(handoff.parts_to_json(PARTS))) == PARTS
    assert handoff.parts_from_json(handoff.parts_to_json(PARTS)) == PARTS
    assert handoff.parts_from_metadata({}) is None
    assert handoff.parts_from_metadata(None) is None


def test_recorded_reads_fingerprint_and_hash_or_nothing() -> None:
    meta = handoff.event_metadata(LOCK, OUT, Path("/x"), hit=False)
    wrapped = {k: MetadataValue.text(v) if isinstance(v, str) else v for k, v in meta.items()}
    assert handoff.recorded(wrapped) == (LOCK.fingerprint, "1" * 16)
    assert handoff.recorded({"pivot/hash": "1" * 16}) is None
    assert handoff.recorded({}) is None


def test_deferred_reads_once_with_the_locks_it_is_given() -> None:
    calls: list[dict] = []

    def load(locks):
        calls.append(dict(locks))
        return len(calls)

    d = Deferred(load)
    assert d.resolve({(Path("/p"), "up"): LOCK}) == 1
    assert d.resolve() == 1
    assert calls == [{(Path("/p"), "up"): LOCK}]
    assert Deferred(lambda locks: dict(locks)).resolve() == {}


def test_pivot_type_accepts_markers_and_is_made_once_per_annotation() -> None:
    t = pivot_type(int)
    assert pivot_type(int) is t and pivot_type(str) is not t
    assert t.type_check(None, CacheHit(LOCK, PARTS)).success
    assert t.type_check(None, Deferred(lambda locks: 1)).success
    assert t.type_check(None, 3).success
    assert not t.type_check(None, "three").success
