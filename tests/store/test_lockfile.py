"""Lock files: deterministic YAML, atomic replace, and a LockError naming the file for
anything malformed, truncated, newer, or with a fingerprint that does not match."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pivot_store import lockfile
from pivot_store.errors import LockError
from pivot_store.lockfile import (
    FingerprintParts,
    Lock,
    Origin,
    OutputRecord,
    read_lock,
    write_lock,
)

H1, H2 = "0123456789abcdef", "fedcba9876543210"


def _lock(params: dict | None = None, deps: dict | None = None) -> Lock:
    parts = FingerprintParts(
        code_version="v1", params=params or {"b": 2, "a": 1.5}, deps=deps or {"up": H2}
    )
    outs = [
        OutputRecord(name="result", path="data/out.csv", hash=H1, size=10, format="csv"),
        OutputRecord(name="extra", hash=H2 + ".dir", size=0, kind="dir"),
    ]
    return Lock.build("group/asset", parts, outs)


def test_same_lock_same_bytes_sorted_keys(tmp_path: Path) -> None:
    a = _lock(params={"b": 2, "a": 1.5, "z": [1, "x"]}, deps={"y": H1, "x": H2})
    b = _lock(params={"z": [1, "x"], "a": 1.5, "b": 2}, deps={"x": H2, "y": H1})
    assert a.to_yaml() == b.to_yaml()
    assert a.fingerprint == b.fingerprint
    top = [line.split(":")[0] for line in a.to_yaml().decode().splitlines() if line[0].isalpha()]
    assert top == sorted(top) == ["fingerprint", "name", "outputs", "parts", "schema_version"]
    p1, p2 = tmp_path / "a.lock", tmp_path / "b.lock"
    write_lock(p1, a)
    write_lock(p2, b)
    assert p1.read_bytes() == p2.read_bytes()
    assert read_lock(p1) == a


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(),
            st.text(max_size=8),
            st.booleans(),
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    )
)
def test_round_trip_through_yaml(params: dict) -> None:
    lock = _lock(params=params or {"k": 1})
    again = lockfile.parse_lock(yaml.safe_load(lock.to_yaml()), "x.lock")
    assert again == lock and again.to_yaml() == lock.to_yaml()


def test_write_is_an_atomic_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stages" / "a.lock"
    old = _lock()
    write_lock(path, old)
    ino = path.stat().st_ino
    new = _lock(params={"a": 2})
    write_lock(path, new)
    assert path.stat().st_ino != ino  # replaced, not rewritten in place
    assert read_lock(path) == new

    # A crash at the rename leaves the old lock whole and no temp behind.
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_lock(path, old)
    monkeypatch.undo()
    assert read_lock(path) == new
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.lock"]


@pytest.mark.parametrize(
    "text, needle",
    [
        (b"outputs: [\n", "not valid YAML"),
        (b"a: b\n\xc3\x28 bad utf-8", "not valid YAML"),
        (b"", "not a lock"),
        (b"- just\n- a list\n", "not a lock"),
        (b"name: x\n", "no schema_version"),
    ],
)
def test_malformed_yaml_names_the_file(tmp_path: Path, text: bytes, needle: str) -> None:
    path = tmp_path / "bad.lock"
    path.write_bytes(text)
    with pytest.raises(LockError, match=needle) as e:
        read_lock(path)
    assert str(path) in str(e.value) and e.value.fix


def test_every_truncation_is_refused(tmp_path: Path) -> None:
    # "never silently treated as valid": a lock cut anywhere must not parse.
    data = _lock().to_yaml()
    path = tmp_path / "t.lock"
    for cut in range(len(data.rstrip())):
        path.write_bytes(data[:cut])
        with pytest.raises(LockError, match=re.escape(str(path))):
            read_lock(path)


def _data() -> dict:
    return _lock().to_data()


def _mutate(fn):
    d = _data()
    fn(d)
    return d


@pytest.mark.parametrize(
    "data, needle",
    [
        (_mutate(lambda d: d["outputs"][0].update(hash="zz")), "not an object id"),
        (_mutate(lambda d: d["outputs"][0].update(hash="../../etc/passwd")), "not an object id"),
        (_mutate(lambda d: d["outputs"][0].update(path="../../x")), "'..'"),
        (_mutate(lambda d: d["outputs"][0].update(path="/etc/passwd")), "absolute"),
        (_mutate(lambda d: d["outputs"][0].update(size=-1)), "size"),
        (_mutate(lambda d: d["outputs"][0].update(kind="socket")), "kind"),
        (_mutate(lambda d: d.update(surprise=1)), "surprise"),
        (_mutate(lambda d: d.pop("outputs")), "outputs"),
        (_mutate(lambda d: d.update(name="../../x")), "'..'"),
        (_mutate(lambda d: d.update(schema_version="1")), "schema_version"),
        (_mutate(lambda d: d.update(schema_version=0)), "schema_version"),
        (_mutate(lambda d: d.update(fingerprint="0000000000000000")), "fingerprint does not match"),
        (_mutate(lambda d: d["parts"].update(code_version="v2")), "fingerprint does not match"),
    ],
)
def test_invalid_fields_raise_lock_error(tmp_path: Path, data: dict, needle: str) -> None:
    path = tmp_path / "x.lock"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LockError, match=needle) as e:
        read_lock(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("version", [3, 99, "2"])
def test_newer_schema_is_refused(tmp_path: Path, version) -> None:
    path = tmp_path / "new.lock"
    path.write_text(yaml.safe_dump({**_data(), "schema_version": version}))
    with pytest.raises(LockError, match="schema_version") as e:
        read_lock(path)
    assert str(path) in str(e.value)


def test_schema_2_fields_raise_the_version_and_round_trip(tmp_path: Path) -> None:
    """A lock is written with the oldest schema that holds it: 1 without the format-2
    fields (older pivots still read it), 2 with any; the empty ones leave the
    fingerprint as schema 1 computed it."""
    out = [OutputRecord(hash="0123456789abcdef", size=1)]
    plain = Lock.build("a", FingerprintParts(code_version="1"), out)
    assert plain.schema_version == 1 and "origin" not in plain.to_data()
    assert "code" not in plain.to_data()["parts"]
    empty = FingerprintParts(code_version="1", code={}, resources={}, files={})
    assert empty.digest("a") == plain.fingerprint
    for parts, origin in [
        (FingerprintParts(code_version="1", code={"m.f": "0123456789abcdef"}), None),
        (FingerprintParts(code_version="1", resources={"db": {"env": "prod"}}), None),
        (FingerprintParts(code_version="1", files={"x.csv": "0123456789abcdef"}), None),
        (FingerprintParts(code_version="1"), Origin(run_id="r1", duration_s=2.5)),
    ]:
        lock = Lock.build("a", parts, out, origin=origin)
        assert lock.schema_version == 2
        assert (lock.fingerprint == plain.fingerprint) is (origin is not None)
        path = tmp_path / "a.lock"
        path.write_bytes(lock.to_yaml())
        assert read_lock(path) == lock


@pytest.mark.parametrize(
    "origin", [{"duration_s": "1"}, {"computed_at": -1}, {"run_id": 3}, {"who": "x"}]
)
def test_a_bad_origin_is_refused(tmp_path: Path, origin: dict) -> None:
    path = tmp_path / "o.lock"
    path.write_text(yaml.safe_dump({**_data(), "origin": origin}))
    with pytest.raises(LockError, match="origin"):
        read_lock(path)


def test_missing_and_unreadable_locks(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="does not exist"):
        read_lock(tmp_path / "nope.lock")
    (tmp_path / "dir.lock").mkdir()
    with pytest.raises(LockError, match=r"dir\.lock"):
        read_lock(tmp_path / "dir.lock")


def test_fingerprint_covers_name_and_every_part() -> None:
    base = FingerprintParts(code_version="1", params={"a": 1}, deps={"u": H1}, partition="p")
    fps = {
        base.digest("x"),
        base.digest("y"),
        base.replace(code_version="2").digest("x"),
        base.replace(params={"a": 2}).digest("x"),
        base.replace(deps={"u": H2}).digest("x"),
        base.replace(partition="q").digest("x"),
    }
    assert len(fps) == 6


def test_output_lookup() -> None:
    lock = _lock()
    assert lock.output("extra").kind == "dir"
    with pytest.raises(LockError, match="no output 'nope'"):
        lock.output("nope")


# --- the same bytes as every lock written so far -------------------------------
# Written by the pydantic models this module replaced (commit 9b629a1): locks are
# committed to git, so a rewrite must not change one byte of them.
UNICODE_LOCK = (
    b"fingerprint: 39b4473adca3c5da\nname: group/caf\xc3\xa9\noutputs:\n- format: pandas.parquet\n"
    b"  hash: 0123456789abcdef\n  kind: file\n  name: r\xc3\xa9sultat\n"
    b"  path: donn\xc3\xa9es/x.csv\n  size: 10\n- hash: fedcba9876543210.dir\n  kind: dir\n"
    b"  name: extra\n  size: 0\nparts:\n  code_version: v1\n  deps:\n    up: 0123456789abcdef\n"
    b"  params:\n    k:\n      z: '2024-01-01'\n    \xc3\xbc:\n    - 1\n    - x\n    - null\n"
    b"    - 1.5\n    - true\n  partition: '2024-01-01'\nschema_version: 1\n"
)
NEL_LOCK = (
    b"fingerprint: f129bbdb3e01df9d\nname: nel\noutputs:\n- hash: 0123456789abcdef\n  kind: file\n"
    b"  name: result\n  size: 1\nparts:\n  deps: {}\n  params:\n"
    b'    t: "a\\Nb \\xE9"\nschema_version: 1\n'
)


def _unicode_lock() -> Lock:
    outs = [
        OutputRecord(
            name="résultat", path="données/x.csv", hash=H1, size=10, format="pandas.parquet"
        ),
        OutputRecord(name="extra", hash=H2 + ".dir", size=0, kind="dir"),
    ]
    params = {"ü": [1, "x", None, 1.5, True], "k": {"z": "2024-01-01"}}
    parts = FingerprintParts(
        code_version="v1", params=params, deps={"up": H1}, partition="2024-01-01"
    )
    return Lock.build("group/café", parts, outs)


def _nel_lock() -> Lock:
    parts = FingerprintParts(params={"t": "a\x85b é"})
    return Lock.build("nel", parts, [OutputRecord(hash=H1, size=1)])


@pytest.mark.parametrize("make, raw", [(_unicode_lock, UNICODE_LOCK), (_nel_lock, NEL_LOCK)])
def test_yaml_is_byte_identical_to_earlier_locks(tmp_path: Path, make, raw: bytes) -> None:
    lock = make()
    assert lock.to_yaml() == raw
    path = tmp_path / "x.lock"
    path.write_bytes(raw)
    assert read_lock(path) == lock


@pytest.mark.parametrize("raw", [UNICODE_LOCK, NEL_LOCK, _lock().to_yaml()])
def test_libyaml_and_python_loaders_read_the_same(raw: bytes) -> None:
    data, *others = _load_both(raw)
    assert yaml.__with_libyaml__ == bool(others)
    assert all(o == data for o in others)
    assert lockfile.parse_lock(data, "x.lock").to_yaml() == raw


# --- records built in Python are checked like records read -----------------------
@pytest.mark.parametrize(
    "build, needle",
    [
        (lambda: OutputRecord(hash="bad", size=1), "not an object id"),
        (lambda: OutputRecord(hash=H1, size=-1), "size"),
        (lambda: OutputRecord(hash=H1, size=True), "size"),
        (lambda: OutputRecord(hash=H1, size=1, kind="socket"), "kind"),
        (lambda: OutputRecord(hash=H1, size=1, path="../x"), "'..'"),
        (lambda: FingerprintParts(params={"a": float("nan")}), "not plain JSON"),
        (lambda: FingerprintParts(params={"a": (1, 2)}), "not plain JSON"),
        (lambda: FingerprintParts(deps={"a": 1}), "deps"),
        (lambda: FingerprintParts(code_version="\udcff"), "not valid UTF-8"),
        (lambda: Lock(name="x", fingerprint=H1, outputs=[]), "fingerprint does not match"),
        (lambda: Lock.build("../x", FingerprintParts(), []), "'..'"),
        (lambda: _lock().replace(name="other"), "fingerprint does not match"),
        (lambda: _lock().outputs[0].replace(hash="zz"), "not an object id"),
    ],
)
def test_constructors_validate(build, needle: str) -> None:
    with pytest.raises(LockError, match=needle):
        build()


def test_records_are_frozen_and_do_not_share_callers_data() -> None:
    params = {"a": [1]}
    parts = FingerprintParts(params=params)
    params["a"].append(2)
    assert parts.params == {"a": [1]}
    lock = Lock.build("x", parts, [OutputRecord(hash=H1, size=1)])
    data = lock.to_data()
    data["parts"]["params"]["a"].append(3)
    assert lock.parts.params == {"a": [1]}
    with pytest.raises(AttributeError):
        lock.name = "y"  # type: ignore[misc]


def test_parts_to_data_and_from_data() -> None:
    parts = FingerprintParts(code_version="1", params={"a": 1}, deps={"u": H1})
    data = parts.to_data()
    assert data == {"code_version": "1", "params": {"a": 1}, "deps": {"u": H1}, "partition": None}
    assert FingerprintParts.from_data(data) == parts
    assert FingerprintParts.from_data({}) == FingerprintParts()
    with pytest.raises(LockError, match="surprise"):
        FingerprintParts.from_data({**data, "surprise": 1})
    with pytest.raises(LockError, match="mapping"):
        FingerprintParts.from_data([1])


def test_lockfile_does_not_import_pydantic() -> None:
    import subprocess
    import sys

    code = "import sys, pivot_store.lockfile; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: [unclosed\n", "not valid YAML"),
        ("outputs: []\nname: x\n", "no schema_version"),  # cut short
        ("- a list\n", "not a lock"),
        (f"fingerprint: {H1}\nname: data\noutputs: []\nschema_version: 1\n", "does not match"),
        (f"fingerprint: {H1}\nname: ../x\noutputs: []\nschema_version: 1\n", "'..'"),
        ("schema_version: 3\nname: x\n", "newer than this pivot"),
        (f"schema_version: true\nname: x\nfingerprint: {H1}\noutputs: []\n", "schema_version"),
        (f"fingerprint: {H1}\nname: x\noutputs: !!timestamp nope\nschema_version: 1\n", "YAML"),
        (f'fingerprint: {H1}\nname: x\noutputs: "\\U0080FFFF"\nschema_version: 1\n', "x.lock"),
        (
            f"fingerprint: {H1}\nname: x\noutputs: []\n"
            'parts: {partition: "\\udcff"}\nschema_version: 1\n',
            "x.lock",
        ),
    ],
)
def test_malformed_lock_text_is_one_lock_error(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "x.lock"
    p.write_text(text)
    with pytest.raises(LockError, match=needle) as e:
        read_lock(p)
    assert str(p) in str(e.value) and e.value.fix


# --- the one parser over random and mutated locks ---------------------------------
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=8,
)
_ODD = (
    _JSON
    | st.binary(max_size=3)
    | st.dates()
    | st.just("0123456789abcdef")
    | st.just("a/../b")
    | st.just(1.0)
    | st.just("5")
    | st.dictionaries(st.integers(), st.integers(), max_size=2)
)


def _finite(value):
    """`value` with NaN and infinities replaced: a lock's params are plain JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


@st.composite
def _valid_locks(draw) -> Lock:
    name = draw(st.sampled_from(["data", "a/b.csv", "model", "x y", "é/ü"]))
    parts = FingerprintParts(
        code_version=draw(st.none() | st.text(max_size=4)),
        params=_finite(draw(st.dictionaries(st.text(max_size=4), _JSON, max_size=3))),
        deps=draw(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)),
        partition=draw(st.none() | st.text(max_size=4)),
    )
    outs = [
        OutputRecord(
            name=draw(st.sampled_from(["result", "o"]) | st.text(max_size=4)),
            path=draw(st.none() | st.just("data/x")),
            hash=draw(st.sampled_from([H1, H2 + ".dir"])),
            size=draw(st.integers(0, 10**12)),
            kind=draw(st.sampled_from(["file", "dir"])),
            format=draw(st.none() | st.just("pandas.parquet") | st.text(max_size=4)),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    return Lock.build(name, parts, outs)


def _load_both(raw: bytes) -> list:
    loaders = [yaml.SafeLoader] + ([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])
    return [yaml.load(raw, Loader=loader) for loader in loaders]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_valid_locks())
def test_the_parser_round_trips_every_lock(lock: Lock) -> None:
    raw = lock.to_yaml()
    for data in _load_both(raw):  # libyaml and pure-Python read the same lock
        again = lockfile.parse_lock(data, "x.lock")
        assert again == lock
        assert again.to_yaml() == raw  # stable bytes


@st.composite
def _mutated_lock_data(draw) -> dict:
    """A valid lock's data with a value replaced, removed or added anywhere."""
    data = draw(_valid_locks()).to_data()
    for _ in range(draw(st.integers(1, 3))):
        spots = [(data, k) for k in data]
        if isinstance(data.get("parts"), dict):
            spots += [(data["parts"], k) for k in data["parts"]]
        for o in data.get("outputs", []) if isinstance(data.get("outputs"), list) else []:
            if isinstance(o, dict):
                spots += [(o, k) for k in o]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "add" or not spots:
            where = draw(st.sampled_from([data, *(s[0] for s in spots)]))
            where[draw(st.sampled_from(["extra", "name", "size", "kind", "params"]))] = draw(_ODD)
        else:
            where, key = draw(st.sampled_from(spots))
            if action == "remove":
                del where[key]
            else:
                where[key] = draw(_ODD)
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_lock_data())
def test_the_parser_refuses_mutated_locks_with_a_lock_error(data: dict) -> None:
    try:
        lock = lockfile.parse_lock(data, "x.lock")
    except LockError as e:  # never another exception
        assert "x.lock" in str(e) and e.fix
        return
    # A mutation that keeps the lock valid (a default restored, an equal value):
    # it reads back as itself and its fingerprint is its parts'.
    assert lock.fingerprint == lock.parts.digest(lock.name)
    assert lockfile.parse_lock(yaml.safe_load(lock.to_yaml()), "x.lock") == lock


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_valid_locks(), st.data())
def test_loaders_agree_on_mutated_bytes(tmp_path_factory, lock: Lock, data) -> None:
    raw = bytearray(lock.to_yaml())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i : i + data.draw(st.integers(0, 2))] = data.draw(
            st.sampled_from([b"", b"\t", b" ", b"\n", b"'", b'"', b"\xc2\x85", b"\\", b"#", b"x"])
        )
    results = []
    for loader in [yaml.SafeLoader] + ([yaml.CSafeLoader] if yaml.__with_libyaml__ else []):
        try:
            results.append(yaml.load(bytes(raw), Loader=loader))
        except Exception:  # refused: read_lock makes this a LockError
            results.append(None)
    # libyaml is laxer about whitespace (a tab after a colon); where both read
    # the file, they read the same data.
    if None not in results:
        assert all(r == results[0] for r in results)
    path = tmp_path_factory.mktemp("lock") / "x.lock"
    path.write_bytes(bytes(raw))
    try:
        read_lock(path)
    except LockError as e:
        assert str(path) in str(e)
