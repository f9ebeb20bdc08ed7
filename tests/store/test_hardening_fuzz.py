"""Hostile input (contract line 6): manifests, locks and config from anyone.

Hypothesis feeds random and mutated documents to the readers: the only
exception allowed is the reader's own PivotError, and nothing accepted may name
a path that escapes. Truncated files are refused with a message naming them.
"""

from __future__ import annotations

import json
import math
import posixpath
import unittest
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pivot_store.config import Config, RemoteConfig, load_config, save_config
from pivot_store.errors import ConfigError, LockError, ManifestError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord, parse_lock, read_lock
from pivot_store.manifest import Entry, Manifest

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
#: Cases a search must have run (of FUZZ's 300) for its test to pass.
MIN_CASES = 150
#: Outcomes of the cases one `_fuzz` call ran, by class.
COUNTS: dict[str, int] = {}

HOSTILE_PATHS = [
    "../x",
    "../../etc/passwd",
    "/abs",
    "a/../../b",
    "a/./b",
    "a//b",
    "C:\\x",
    "a\\..\\b",
    "\x00",
    "a\x00b",
    "",
    ".",
    "..",
    "ok/" + "x" * 300,
    "\u2024\u2024/x",
    "a/\ud800",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(HOSTILE_PATHS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
oid_like = st.one_of(
    st.from_regex(r"[0-9a-f]{16}(\.dir)?", fullmatch=True), st.text(max_size=20), scalars
)
entry_rows = st.fixed_dictionaries(
    {},
    optional={
        "path": st.one_of(st.sampled_from(HOSTILE_PATHS), st.text(max_size=12), scalars),
        "hash": oid_like,
        "size": st.one_of(st.integers(min_value=-5, max_value=2**65), scalars),
        "exec": scalars,
        "dir": scalars,
    },
)
manifest_docs = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"version": st.one_of(st.just(1), scalars), "entries": st.lists(entry_rows, max_size=5)}
    ),
)


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _fuzz(run, *fixtures, allowed: set[str], seen: set[str]) -> dict[str, int]:
    """Run a hypothesis search, then prove it ran: figures that only real cases make.

    Every case ends in one counted outcome (an unexpected exception fails the
    search itself); at least MIN_CASES cases ran, every outcome is one
    of `allowed`, and each class in `seen` happened (a fuzzer whose inputs never
    reach the reader's refusal, or never get past it, checks nothing).
    """
    COUNTS.clear()
    try:
        run(*fixtures)
    except (pytest.skip.Exception, unittest.SkipTest) as e:  # told to run no cases
        pytest.fail(f"{run.__name__} ran no cases: {e}")
    counts = dict(sorted(COUNTS.items()))
    print(f"\n[fuzz] {run.__name__}: {sum(counts.values())} cases, {counts}")
    assert sum(counts.values()) >= MIN_CASES, counts
    assert counts.keys() <= allowed, counts
    assert seen <= counts.keys(), counts
    return counts


def _assert_safe_manifest(m: Manifest) -> None:
    for e in m.entries:
        assert isinstance(e.path, str) and e.path
        assert not posixpath.isabs(e.path) and "\\" not in e.path and "\x00" not in e.path
        assert all(part not in ("", ".", "..") for part in e.path.split("/"))
        assert not posixpath.normpath(e.path).startswith("..")


def _manifest_bytes_or_error(data: bytes) -> None:
    try:
        m = Manifest.from_bytes(data, "0123456789abcdef.dir")
    except ManifestError as e:
        assert "0123456789abcdef.dir" in str(e)
        _count("manifest refused")
        return
    _assert_safe_manifest(m)
    _count("manifest accepted")


MANIFEST_OUTCOMES = {"manifest refused", "manifest accepted"}


@FUZZ
@given(manifest_docs)
def _random_manifest_docs(doc) -> None:
    try:
        data = json.dumps(doc).encode()
    except (ValueError, TypeError):
        _count("not JSON")
        return
    _manifest_bytes_or_error(data)


def test_manifest_reader_over_random_docs() -> None:
    _fuzz(
        _random_manifest_docs,
        allowed=MANIFEST_OUTCOMES | {"not JSON"},
        seen={"manifest refused"},
    )


VALID_MANIFEST = Manifest(
    (
        Entry("a.txt", "0123456789abcdef", 3, False),
        Entry("sub/b.bin", "fedcba9876543210", 10, True),
        Entry("empty", None),
    )
).to_bytes()


@FUZZ
@given(st.data())
def _mutated_manifests(data) -> None:
    raw = bytearray(VALID_MANIFEST)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "delete", "insert", "splice"]))
        i = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[i] = data.draw(st.integers(0, 255))
        elif kind == "delete" and raw:
            del raw[i : i + data.draw(st.integers(1, 8))]
        elif kind == "insert":
            raw[i:i] = data.draw(st.binary(max_size=8))
        else:
            raw[i:i] = data.draw(st.sampled_from([b'"../x"', b'"/etc"', b"[[[[", b'"a\\u0000"']))
    _manifest_bytes_or_error(bytes(raw))


def test_manifest_reader_over_mutated_valid_manifests() -> None:
    _fuzz(_mutated_manifests, allowed=MANIFEST_OUTCOMES, seen={"manifest refused"})


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"version":1,"entries":' + b"[" * 50_000,
        b'{"version":1,"entries":[{"path":"../x","hash":"0123456789abcdef","size":1}]}',
        b'{"version":1,"entries":[{"path":"a","hash":"0123456789abcdef","size":true}]}',
        b'{"version":1,"entries":[{"path":"a","hash":"0123456789abcdef","size":1},'
        b'{"path":"a","hash":"fedcba9876543210","size":1}]}',
        b'{"version":1,"entries":[{"path":"a","hash":"0123456789abcdef","size":1},'
        b'{"path":"a/b","hash":"fedcba9876543210","size":1}]}',
    ],
    ids=["deep-list", "deep-entries", "escape", "bool-size", "duplicate", "file-as-folder"],
)
def test_manifest_hostile_cases_are_refused(data: bytes) -> None:
    with pytest.raises(ManifestError, match=r"0123456789abcdef\.dir"):
        Manifest.from_bytes(data, "0123456789abcdef.dir")


def test_truncated_manifest_is_refused_at_every_length() -> None:
    for n in range(len(VALID_MANIFEST)):
        with pytest.raises(ManifestError, match=r"0123456789abcdef\.dir"):
            Manifest.from_bytes(VALID_MANIFEST[:n], "0123456789abcdef.dir")
    print(f"\n[fuzz] manifest truncated at all {len(VALID_MANIFEST)} lengths: all refused")


# --- locks ----------------------------------------------------------------------
def _valid_lock() -> Lock:
    outs = [
        OutputRecord(name="result", path="data/x.csv", hash="0123456789abcdef", size=10),
        OutputRecord(name="folder", hash="fedcba9876543210.dir", size=3, kind="dir"),
    ]
    parts = FingerprintParts(
        code_version="1", params={"n": 3, "s": "x"}, deps={"up": "0123456789abcdef"}
    )
    return Lock.build("group/asset", parts, outs)


yaml_values = st.recursive(
    st.one_of(
        scalars,
        st.dates(),
        st.datetimes(),
        st.binary(max_size=8),
        st.just(float("nan")),
        st.just(math.inf),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=10,
)


def _mutate(data, draw, depth=0):
    """Replace, delete or add one key somewhere in a nested lock dict."""
    if isinstance(data, dict) and data and (depth > 2 or draw(st.booleans())):
        key = draw(st.sampled_from(sorted(data, key=str)))
        action = draw(st.sampled_from(["replace", "delete", "add", "recurse"]))
        out = dict(data)
        if action == "replace":
            out[key] = draw(yaml_values)
        elif action == "delete":
            del out[key]
        elif action == "add":
            out[draw(st.text(max_size=8))] = draw(yaml_values)
        else:
            out[key] = _mutate(out[key], draw, depth + 1)
        return out
    if isinstance(data, list) and data:
        i = draw(st.integers(0, len(data) - 1))
        out = list(data)
        out[i] = _mutate(out[i], draw, depth + 1)
        return out
    return draw(yaml_values) if draw(st.booleans()) else data


@FUZZ
@given(st.data())
def _mutated_lock_docs(data) -> None:
    doc = _valid_lock().to_data()
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _mutate(doc, data.draw)
    try:
        lock = parse_lock(doc, "stages/x.lock")
    except LockError as e:
        assert "stages/x.lock" in str(e)
        _count("lock refused")
        return
    _count("lock accepted")
    for out in lock.outputs:
        if out.path is not None:
            assert not posixpath.isabs(out.path) and ".." not in out.path.split("/")


def test_parse_lock_over_mutated_locks_raises_only_lock_error() -> None:
    outcomes = {"lock refused", "lock accepted"}
    _fuzz(_mutated_lock_docs, allowed=outcomes, seen=outcomes)


@FUZZ
@given(st.data())
def _mutated_lock_bytes(tmp_path_factory, data) -> None:
    raw = bytearray(_valid_lock().to_yaml())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if kind == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif kind == "delete":
            del raw[i : i + data.draw(st.integers(1, 10))]
        else:
            raw[i:i] = data.draw(
                st.sampled_from(
                    [b"!!python/object:os.system", b"&a [*a]", b"{", b"\x00", b".nan", b"\t"]
                )
            )
    path = tmp_path_factory.mktemp("lock") / "x.lock"
    path.write_bytes(bytes(raw))
    try:
        read_lock(path)
    except LockError as e:
        assert str(path) in str(e)
        _count("lock bytes refused")
        return
    _count("lock bytes accepted")


def test_read_lock_over_mutated_bytes(tmp_path_factory) -> None:
    outcomes = {"lock bytes refused", "lock bytes accepted"}
    _fuzz(_mutated_lock_bytes, tmp_path_factory, allowed=outcomes, seen={"lock bytes refused"})


@pytest.mark.parametrize(
    "params",
    [{"x": float("nan")}, {"d": "__DATE__"}, {"b": b"\x00\x01"}, {"s": {1, 2}}],
    ids=["nan", "date", "bytes", "set"],
)
def test_lock_params_that_are_not_json_are_a_lock_error(tmp_path: Path, params) -> None:
    doc = _valid_lock().to_data()
    if params.get("d") == "__DATE__":
        import datetime

        params = {"d": datetime.date(2024, 1, 1)}
    doc["parts"]["params"] = params
    path = tmp_path / "x.lock"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(LockError, match=r"x\.lock"):
        read_lock(path)


def test_truncated_lock_is_refused_at_every_length(tmp_path: Path) -> None:
    raw = _valid_lock().to_yaml()
    path = tmp_path / "stages" / "x.lock"
    path.parent.mkdir()
    for n in range(len(raw)):
        path.write_bytes(raw[:n])
        if raw[:n].rstrip() == raw.rstrip():
            assert read_lock(path) == _valid_lock()  # only the final newline lost
            continue
        with pytest.raises(LockError, match=r"x\.lock"):
            read_lock(path)
    print(
        f"\n[fuzz] lock truncated at all {len(raw)} lengths:"
        " all refused but the one that lost only its final newline"
    )


# --- config ---------------------------------------------------------------------
def _config_text() -> bytes:
    cfg = Config(
        remotes={
            "origin": RemoteConfig(url="s3://bucket/prefix"),
            "minio": RemoteConfig(url="s3://b/p", endpoint_url="http://127.0.0.1:9000"),
        },
        default_remote="origin",
        checkout_mode="copy",
    )
    return cfg


@FUZZ
@given(st.data())
def _mutated_configs(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    save_config(path, _config_text())
    if data.draw(st.booleans()):
        raw = bytearray(path.read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            if data.draw(st.booleans()):
                raw[i] = data.draw(st.integers(0, 255))
            else:
                raw[i:i] = data.draw(st.sampled_from([b"{", b": ", b"- ", b"\n  ", b"[", b"&x *x"]))
        path.write_bytes(bytes(raw))
    else:
        doc = yaml.safe_load(path.read_bytes())
        doc = _mutate(doc, data.draw)
        try:
            path.write_text(yaml.safe_dump(doc))
        except yaml.YAMLError:
            _count("not YAML")  # a value YAML cannot write (a frozenset): no file to read
            return
    try:
        load_config(path)
    except ConfigError as e:
        assert str(path) in str(e)
        _count("config refused")
        return
    _count("config accepted")


def test_config_load_over_mutated_yaml(tmp_path_factory) -> None:
    outcomes = {"config refused", "config accepted"}
    _fuzz(_mutated_configs, tmp_path_factory, allowed=outcomes | {"not YAML"}, seen=outcomes)


def test_truncated_config_is_refused_or_a_valid_prefix(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    save_config(path, _config_text())
    raw = path.read_bytes()
    refused = 0
    for n in range(len(raw)):
        path.write_bytes(raw[:n])
        try:
            load_config(path)
        except ConfigError as e:
            assert str(path) in str(e)
            refused += 1
    print(f"\n[fuzz] config truncated at {len(raw)} lengths: {refused} refused, rest valid")


@pytest.mark.parametrize("kind", ["directory", "deep", "binary"])
def test_unreadable_config_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "deep":
        path.write_text("a: " + "[" * 20_000)
    else:
        path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        load_config(path)
