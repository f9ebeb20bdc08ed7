"""Issue 12, Dagster level: with PIVOT_SIGNING_KEY set, what the remote holds is still checked.

Deployments are separate project folders (and, where said, separate Dagster
instances) sharing one remote, a folder or a moto bucket. The attacker (or a
deployment whose clock runs ahead) writes raw bytes into the remote following
docs/format.md (tests/fixtures/raw_remote.py), never through pivot's writers.
Each test of an issue 12 item failed on 9b629a1 by its main assertion and
passes now that the item is fixed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xxhash
from dagster import DagsterEventType, DagsterInstance, Definitions, asset, materialize

from pivot_dagster import PivotIOManager, cached, pull_matching, resolve_upstream
from pivot_store import canonical_json
from pivot_store.config import Config, RemoteConfig
from pivot_store.repo import Repo
from tests.dagster.helpers import hits
from tests.fixtures.raw_remote import RawRemote, make_raw_remote, object_rel
from tests.fixtures.xxh64_preimage import second_preimage

K1 = "k1: the first shared signing secret"
K2 = "k2: the secret it was rotated to"
SEEN: list[bytes] = []
CALLS: list[str] = []
VERSION: list[int] = [1]

#: The honest value: raw bytes, long enough (>= 64) for an xxh64 second preimage.
GOOD = b"the honest result of blob, 160 bytes of it, no more and no less.\n" * 2 + b"#" * 30
EVIL_STRIPE = b"EVIL: the attacker's first strip"  # 32 bytes


@asset(code_version="1")
@cached
def blob() -> bytes:
    CALLS.append("blob")
    return GOOD


@asset
def reader(blob: bytes) -> int:
    SEEN.append(blob)
    return len(blob)


@asset
def versioned() -> dict:
    CALLS.append("versioned")
    return {"version": VERSION[0]}


@asset(code_version="1")
@cached
def stable() -> dict:
    CALLS.append("stable")
    return {"answer": 42}


@pytest.fixture(params=["file", "s3"])
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> RawRemote:
    """A fresh folder or moto remote, with an attacker's raw access to it."""
    server = request.getfixturevalue("s3_server") if request.param == "s3" else None
    return make_raw_remote(request.param, tmp_path, server)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    SEEN.clear()
    CALLS.clear()
    VERSION[:] = [1]
    monkeypatch.delenv("PIVOT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("PIVOT_SIGNING_KEY", K1)


def _deployment(root: Path, raw: RawRemote) -> Repo:
    repo = Repo.open(root)
    cfg = Config(remotes={"origin": RemoteConfig(**raw.config)}, default_remote="origin")
    repo.save_config(cfg)
    return repo


def _failure_text(result: Any) -> str:
    texts = []
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            err = event.event_specific_data.error
            texts.append(err.to_string() if err is not None else "")
    return "\n".join(texts)


# --- item 4: remote-first drops the signed digests --------------------------------
@pytest.mark.parametrize("route", ["latest-pointer", "shared-instance"])
def test_remote_first_refuses_an_object_replaced_under_its_xxh64(
    tmp_path: Path, raw: RawRemote, route: str
) -> None:
    """A signed result's object replaced by a second preimage never reaches the downstream.

    `latest-pointer`: the downstream step runs with a fresh instance, so the
    upstream lock comes from the remote's latest pointer; `shared-instance`:
    it shares the upstream step's instance, so the lock comes from that
    materialization's run-cache entry.
    """
    oid = xxhash.xxh64(GOOD).hexdigest()
    forged = second_preimage(GOOD, EVIL_STRIPE)
    assert forged != GOOD and xxhash.xxh64(forged).hexdigest() == oid

    with DagsterInstance.ephemeral() as first_instance:
        up = _deployment(tmp_path / "step-up", raw)
        io = PivotIOManager(project_dir=str(up.root), remote_first=True)
        assert materialize([blob], resources={"io_manager": io}, instance=first_instance).success
        assert raw.get(object_rel(GOOD)) == GOOD
        # The attacker replaces the object under its own name (raw write).
        raw.put(object_rel(GOOD), forged)
        assert raw.get(object_rel(GOOD)) == forged

        down = _deployment(tmp_path / "step-down", raw)
        io = PivotIOManager(project_dir=str(down.root), remote_first=True)
        if route == "shared-instance":
            result = materialize([blob, reader], resources={"io_manager": io},
                                 instance=first_instance, selection=[reader],
                                 raise_on_error=False)  # fmt: skip
        else:
            with DagsterInstance.ephemeral() as fresh:
                result = materialize([blob, reader], resources={"io_manager": io},
                                     instance=fresh, selection=[reader],
                                     raise_on_error=False)  # fmt: skip

    assert forged not in SEEN, "the downstream body was handed the attacker's bytes"
    if not result.success:  # refused: the error names the object (or the missing upstream)
        text = _failure_text(result)
        assert oid in text or "upstream 'blob'" in text, text


@pytest.mark.parametrize("route", ["run-cache-hit", "pull-sensor"])
def test_run_cache_and_pull_refuse_an_object_replaced_under_its_xxh64(
    tmp_path: Path, raw: RawRemote, route: str
) -> None:
    """The other signed paths: a `cached` hit and the pull sensor's walk check the digests too.

    The forged object is removed from the cache: the hit recomputes, the pull reports nothing.
    """
    forged = second_preimage(GOOD, EVIL_STRIPE)
    up = _deployment(tmp_path / "up", raw)
    io = PivotIOManager(project_dir=str(up.root), push_on_write=True)
    with DagsterInstance.ephemeral() as inst:
        assert materialize([blob], resources={"io_manager": io}, instance=inst).success
    raw.put(object_rel(GOOD), forged)

    down = _deployment(tmp_path / "down", raw)
    io = PivotIOManager(project_dir=str(down.root))
    with DagsterInstance.ephemeral() as inst:
        if route == "run-cache-hit":
            result = materialize([blob, reader], resources={"io_manager": io}, instance=inst)
            assert hits(inst, result.run_id)["blob"] is False  # refused, so computed
            assert CALLS == ["blob", "blob"] and SEEN == [GOOD]
            assert down.objects.path(xxhash.xxh64(GOOD).hexdigest()).read_bytes() == GOOD
        else:
            defs = Definitions(assets=[blob], resources={"io_manager": io})
            assert pull_matching(defs, down, "origin", instance=inst) == []
            assert not down.objects.exists(xxhash.xxh64(GOOD).hexdigest())
            assert down.read_lock("blob") is None


# --- item 5: latest/ pointers --------------------------------------------------------
def _stamp(when: datetime) -> str:
    return f"{when:%Y%m%dT%H%M%S.%fZ}"


def _created_at(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sign(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """What any holder of the key computes (docs/security.md): HMAC-SHA256 over the rest."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    mac = hmac.new(key.encode(), canonical_json(body), hashlib.sha256).hexdigest()
    return {**body, "signature": mac}


@pytest.mark.parametrize("attack", ["old-under-future-name", "name-disagrees", "clock-ahead"])
def test_latest_pointer_order_comes_from_signed_content(
    tmp_path: Path, raw: RawRemote, attack: str
) -> None:
    """Only the newest honest result is "latest", whatever pointer names claim.

    - old-under-future-name: the first (validly signed) pointer copied under a
      far-future stamp;
    - name-disagrees: the same copy under a stamp just after now, within any
      clock skew, but not the one its content says;
    - clock-ahead: a deployment whose clock runs 30 days ahead publishes a
      validly signed pointer whose name and created_at agree.
    """
    producer = _deployment(tmp_path / "producer", raw)
    io = PivotIOManager(project_dir=str(producer.root), remote_first=True)
    pointers: list[str] = []
    for version in (1, 2):
        VERSION[:] = [version]
        with DagsterInstance.ephemeral() as inst:
            assert materialize([versioned], resources={"io_manager": io}, instance=inst).success
        pointers = raw.list("latest/versioned")
    assert len(pointers) == 2, pointers
    newest = producer.read_lock("versioned")
    assert newest is not None
    first_name = pointers[0]
    first = raw.get(f"latest/versioned/{first_name}")
    entry = first_name.rsplit("-", 1)[1]  # `<entry id>.json`
    now = datetime.now(UTC)
    if attack == "old-under-future-name":
        raw.put(f"latest/versioned/29991231T235959.999999Z-{entry}", first)
    elif attack == "name-disagrees":
        raw.put(f"latest/versioned/{_stamp(now + timedelta(seconds=2))}-{entry}", first)
    else:
        ahead = now + timedelta(days=30)
        doc = _sign({**json.loads(first), "created_at": _created_at(ahead)}, K1)
        raw.put(f"latest/versioned/{_stamp(ahead)}-{entry}", canonical_json(doc))

    reader_repo = _deployment(tmp_path / "reader", raw)
    found = resolve_upstream(reader_repo, "origin", "versioned")

    assert found is not None
    assert found == newest, (
        f"latest resolved to {found.outputs[0].hash}, not the newest result "
        f"{newest.outputs[0].hash} ({attack}; pointers {raw.list('latest/versioned')})"
    )


@pytest.mark.parametrize("signer", ["unsigned", "another-key"])
def test_a_pointer_not_signed_by_this_key_is_skipped(
    tmp_path: Path, raw: RawRemote, signer: str
) -> None:
    """Someone without the key rolls "latest" back: the old result's pointer, re-dated now
    (name and created_at agree, within the clock skew), unsigned or signed by another
    key. A reader with K1 skips it and keeps the newest signed result. (This held on
    9b629a1 already; it fails with the signature check removed from `parse_entry`.)"""
    producer = _deployment(tmp_path / "producer", raw)
    io = PivotIOManager(project_dir=str(producer.root), remote_first=True)
    for version in (1, 2):
        VERSION[:] = [version]
        with DagsterInstance.ephemeral() as inst:
            assert materialize([versioned], resources={"io_manager": io}, instance=inst).success
    newest = producer.read_lock("versioned")
    first_name = raw.list("latest/versioned")[0]
    doc = json.loads(raw.get(f"latest/versioned/{first_name}"))
    now = datetime.now(UTC)
    doc = {k: v for k, v in doc.items() if k not in ("signature", "sha256")}
    doc["created_at"] = _created_at(now)
    if signer == "another-key":
        doc = _sign(doc, K2)
    entry = first_name.rsplit("-", 1)[1]
    raw.put(f"latest/versioned/{_stamp(now)}-{entry}", canonical_json(doc))

    found = resolve_upstream(_deployment(tmp_path / "reader", raw), "origin", "versioned")

    assert found is not None and newest is not None
    assert found == newest, (
        f"an {signer} pointer rolled latest back to {found.outputs[0].hash} "
        f"(newest signed: {newest.outputs[0].hash})"
    )


# --- item 9: key rotation ---------------------------------------------------------------
def _verifies(data: bytes, key: str) -> bool:
    doc = json.loads(data)
    sig = doc.get("signature")
    return isinstance(sig, str) and hmac.compare_digest(sig, _sign(doc, key)["signature"])


def test_key_rotation_writes_new_entries_beside_the_old(
    tmp_path: Path, raw: RawRemote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K1 -> K2 everywhere: a recompute publishes a K2 entry, and the next K2 lookup hits."""

    def run(name: str) -> dict[str, bool]:
        repo = _deployment(tmp_path / name, raw)
        io = PivotIOManager(project_dir=str(repo.root), push_on_write=True)
        with DagsterInstance.ephemeral() as inst:
            result = materialize([stable], resources={"io_manager": io}, instance=inst)
            assert result.success
            return hits(inst, result.run_id)

    assert run("a-k1") == {"stable": False}
    (fp_dir,) = {rel.rsplit("/", 1)[0] for rel in raw.list("runs")}
    monkeypatch.setenv("PIVOT_SIGNING_KEY", K2)  # rotated in every deployment
    assert run("c-k2") == {"stable": False}  # the K1 entry is refused: computed again
    assert CALLS == ["stable", "stable"]

    listed = raw.list("runs")
    entries = {r: raw.get(f"runs/{r}") for r in listed if "/head-" not in r}
    heads = {r: raw.get(f"runs/{r}") for r in listed if "/head-" in r}
    assert sorted(heads.values()) == sorted(entries.values())  # each key's head is its entry
    by_key = {
        k: [rel for rel, data in entries.items() if _verifies(data, key)]
        for k, key in (("K1", K1), ("K2", K2))
    }
    assert len(by_key["K1"]) == 1 and len(by_key["K2"]) == 1, (
        f"after the rotation the run-cache holds {sorted(entries)}; signed by {by_key}"
    )
    assert all(rel.startswith(fp_dir) for rel in entries)  # beside, same fingerprint
    assert run("b-k2") == {"stable": True}  # a K2 lookup finds the K2 entry
    assert CALLS == ["stable", "stable"]


def test_a_local_lock_whose_object_is_gone_refetches_it_checked(
    tmp_path: Path, raw: RawRemote
) -> None:
    """A lock that came from a signed record keeps protecting its objects later.

    The downstream's project resolved `blob` once (objects checked, lock written);
    its local object is then gone (gc, a wiped cache) and the attacker replaces
    the remote one by a second preimage: the re-fetch is checked against the
    signed record of that result, so the body never sees the forged bytes.
    """
    forged = second_preimage(GOOD, EVIL_STRIPE)
    oid = xxhash.xxh64(GOOD).hexdigest()
    with DagsterInstance.ephemeral() as inst:
        up = _deployment(tmp_path / "up", raw)
        io = PivotIOManager(project_dir=str(up.root), remote_first=True)
        assert materialize([blob], resources={"io_manager": io}, instance=inst).success
        down = _deployment(tmp_path / "down", raw)
        io = PivotIOManager(project_dir=str(down.root), remote_first=True)
        assert materialize([blob, reader], resources={"io_manager": io}, instance=inst,
                           selection=[reader]).success  # fmt: skip
        assert SEEN == [GOOD]
        local = down.root / ".pivot" / "cache" / "files" / oid[:2] / oid[2:]
        assert local.exists() and down.read_lock("blob") is not None
        local.unlink()
        raw.put(object_rel(GOOD), forged)
        result = materialize([blob, reader], resources={"io_manager": io}, instance=inst,
                             selection=[reader], raise_on_error=False)  # fmt: skip
    assert forged not in SEEN, "a re-fetched object was used without its signed digest"
    assert not result.success
    assert oid in _failure_text(result)
