"""S3 large objects: the conditional multipart upload with a CRC32 per part
(remote/s3multipart.py) and the ranged GETs that bring one back (`S3Remote.aget_file`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pivot_store.config import RemoteConfig
from pivot_store.remote import MULTIPART_CHUNK, S3Remote, open_remote


def _remote(cfg: dict[str, Any]) -> S3Remote:
    r = open_remote(remote=RemoteConfig(**cfg), name="origin")
    assert isinstance(r, S3Remote)
    return r


def test_parts_carry_crc32_and_the_object_a_composite_checksum(
    s3_server, s3_remote_config: dict[str, Any], tmp_path: Path
) -> None:
    """Created with ChecksumAlgorithm=CRC32: each part is checked by the server, and the
    object keeps a composite CRC32 of its three parts (not one the server built from the
    whole object); the bytes read back are the bytes sent."""
    r = _remote(s3_remote_config)
    src = tmp_path / "big"
    data = os.urandom(2 * MULTIPART_CHUNK + 4321)
    src.write_bytes(data)
    key = r.object_key("0123456789abcdef")
    assert r.put_file(src, key) is True
    bucket, path = r._bk(key)
    got = s3_server.client().get_object(Bucket=bucket, Key=path, ChecksumMode="ENABLED")
    got["Body"].read()
    assert got["ETag"].strip('"').endswith("-3")
    assert got.get("ChecksumCRC32", "").endswith("-3"), got  # composite: of 3 parts' CRC32s
    out = tmp_path / "back"
    r.run(r.aget_file, key, out, len(data))
    assert out.read_bytes() == data


def test_an_existing_key_is_never_replaced_and_the_upload_is_aborted(
    s3_server, s3_remote_config: dict[str, Any], tmp_path: Path
) -> None:
    """If-None-Match on the complete: a key written meanwhile stays as it was, put_file says
    False, and no upload is left behind on the bucket."""
    r = _remote(s3_remote_config)
    key = r.object_key("fedcba9876543210")
    bucket, path = r._bk(key)
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key=path, Body=b"first")
    src = tmp_path / "big"
    src.write_bytes(os.urandom(2 * MULTIPART_CHUNK + 1))
    assert r.put_file(src, key) is False
    assert s3.get_object(Bucket=bucket, Key=path)["Body"].read() == b"first"
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


@pytest.mark.parametrize("use_wire", [True, False])
def test_a_large_object_comes_back_in_range_gets_ranges(
    s3_bucket: str, make_faulty_proxy, tmp_path: Path, use_wire: bool
) -> None:
    """80 MiB comes back in RANGE_GETS (4) ranged GETs of 20 MiB, not in 16 MiB ranges
    (a server may read the whole object for each range), and arrives whole; over the
    wire no GetObject goes through botocore, without it all four do."""
    from pivot_store.remote import s3 as s3_mod
    from tests.fixtures.s3 import remote_options
    from tests.store.test_remote_wire import _botocore_calls

    proxy = make_faulty_proxy(every=0)
    r = _remote({"url": f"s3://{s3_bucket}/store", **remote_options(proxy.url)})
    r.use_wire = use_wire
    key = r.object_key("00112233445566ff")
    data = os.urandom(5 * MULTIPART_CHUNK)
    bucket, path = r._bk(key)
    r.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=data)
    calls = _botocore_calls(r)
    out = tmp_path / "back"
    r.run(r.aget_file, key, out, len(data))
    assert out.read_bytes() == data
    assert len(proxy.ranges) == s3_mod.RANGE_GETS == 4, proxy.ranges
    per = len(data) // 4
    assert sorted(proxy.ranges) == sorted(f"bytes={i * per}-{(i + 1) * per - 1}" for i in range(4))
    assert calls["GetObject"] == (0 if use_wire else 4), calls


@pytest.mark.parametrize("use_wire", [True, False])
def test_parts_go_over_the_wire_and_come_back_whole(
    s3_server, s3_remote_config: dict[str, Any], tmp_path: Path, use_wire: bool
) -> None:
    """With the wire, no part of a multipart upload goes through botocore's UploadPart
    (its create and complete still do); the server checked each part's declared CRC32
    (the object's checksum is the composite of the three) and holds the bytes sent."""
    from tests.store.test_remote_wire import _botocore_calls

    r = _remote(s3_remote_config)
    r.use_wire = use_wire
    calls = _botocore_calls(r)
    src = tmp_path / "big"
    data = os.urandom(2 * MULTIPART_CHUNK + 77)
    src.write_bytes(data)
    key = r.object_key("0123456789abcdee")
    assert r.put_file(src, key) is True
    assert calls["UploadPart"] == (0 if use_wire else 3), calls
    assert calls["CreateMultipartUpload"] == calls["CompleteMultipartUpload"] == 1, calls
    bucket, path = r._bk(key)
    got = s3_server.client().get_object(Bucket=bucket, Key=path, ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got.get("ChecksumCRC32", "").endswith("-3"), got


def test_a_failed_part_is_sent_again_alone(
    s3_server, s3_bucket: str, make_faulty_proxy, tmp_path: Path
) -> None:
    """Every 2nd part PUT fails (503, reset after moto wrote it): each failed part is
    retried on its own within the one upload (one create, one complete), and the object
    read back is the one sent."""
    from tests.fixtures.s3 import remote_options

    proxy = make_faulty_proxy(every=2, modes=("503", "reset-after"), methods=("PUT",))
    cfg = {"url": f"s3://{s3_bucket}/store", **remote_options(proxy.url)}
    r = _remote(cfg)
    src = tmp_path / "big"
    data = os.urandom(3 * MULTIPART_CHUNK + 99)
    src.write_bytes(data)
    key = r.object_key("0a1b2c3d4e5f6a7b")
    assert r.put_file(src, key) is True
    creates = [e for e in proxy.log if e.startswith("POST") and e.endswith("?uploads")]
    completes = [e for e in proxy.log if e.startswith("POST") and "uploadId=" in e]
    parts = [e for e in proxy.log if e.startswith("PUT") and "partNumber=" in e]
    assert len(creates) == 1 and len(completes) == 1, proxy.log
    assert sum(proxy.faults.values()) >= 2 and len(parts) >= 4 + 2, proxy.log
    bucket, path = r._bk(key)
    assert s3_server.client().get_object(Bucket=bucket, Key=path)["Body"].read() == data


def test_a_denied_part_aborts_the_upload_with_nothing_left_in_flight(
    s3_server, s3_bucket: str, make_faulty_proxy, tmp_path: Path
) -> None:
    """A part refused for good (403) is a RemoteError; the other parts are stopped before
    the upload is aborted (no part request follows the abort) and no upload is left."""
    import time

    import pytest

    from pivot_store.errors import RemoteError
    from tests.fixtures.s3 import remote_options

    proxy = make_faulty_proxy(every=2, modes=("403",), methods=("PUT",))
    cfg = {"url": f"s3://{s3_bucket}/store", **remote_options(proxy.url)}
    r = _remote(cfg)
    src = tmp_path / "big"
    src.write_bytes(os.urandom(12 * MULTIPART_CHUNK))
    with pytest.raises(RemoteError):
        r.put_file(src, r.object_key("0a1b2c3d4e5f6a7c"))
    time.sleep(1.0)  # anything still in flight would reach the proxy meanwhile
    aborts = [i for i, e in enumerate(proxy.log) if e.startswith("DELETE")]
    assert len(aborts) == 1, proxy.log
    assert not [e for e in proxy.log[aborts[0] + 1 :] if "partNumber=" in e], proxy.log
    assert not s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


def test_a_range_answered_with_the_whole_object_lands_on_no_other_range(
    s3_server, s3_bucket: str, make_faulty_proxy, tmp_path: Path
) -> None:
    """Every other GET is answered with the whole object (its Range dropped on the way,
    as a server that ignores Range or a hostile one answers): each such answer is cut
    off at the end of its range, never written over the ranges fetched beside it, and
    that range is fetched again, so the file is the object."""
    from tests.fixtures.s3 import remote_options

    data = os.urandom(4 * MULTIPART_CHUNK)
    raw_key = "store/files/0a/1b2c3d4e5f6a7b"  # docs/format.md: files/<oid[:2]>/<oid[2:]>
    s3_server.client().put_object(Bucket=s3_bucket, Key=raw_key, Body=data)
    proxy = make_faulty_proxy(every=2, modes=("ignore-range",), methods=("GET",))
    r = _remote({"url": f"s3://{s3_bucket}/store", **remote_options(proxy.url)})
    out = tmp_path / "back"
    r.run(r.aget_file, r.object_key("0a1b2c3d4e5f6a7b"), out, len(data))
    assert proxy.faults["ignore-range"] >= 2, proxy.log
    assert out.read_bytes() == data


@pytest.mark.parametrize("use_wire", [True, False])
def test_a_mid_size_object_streams_into_the_cache_in_one_ranged_get(
    s3_bucket: str, make_faulty_proxy, tmp_path: Path, use_wire: bool
) -> None:
    """An object of 1 MiB or more whose size is known comes down in one ranged GET
    streamed into a temp file (no whole-body buffer), then hash-checked into the cache;
    a remote copy longer than the size its lock names is refused, nothing kept."""
    from pivot_store.download import download
    from pivot_store.errors import CorruptObject
    from pivot_store.hashing import hash_bytes
    from pivot_store.objects import ObjectStore
    from tests.fixtures.s3 import remote_options

    proxy = make_faulty_proxy(every=0)
    r = _remote({"url": f"s3://{s3_bucket}/store", **remote_options(proxy.url)})
    r.use_wire = use_wire
    data = os.urandom(3 * 2**20 + 5)
    oid = hash_bytes(data)
    bucket, path = r._bk(r.object_key(oid))
    r.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=data)
    objects = ObjectStore(tmp_path / "files")
    assert download(objects, r, oid, len(data))
    assert len(proxy.ranges) == 1 and proxy.ranges[0].startswith("bytes=0-"), proxy.ranges
    assert objects.read_bytes(oid) == data
    # Written raw into the bucket: an object whose copy runs on past its size.
    longer = os.urandom(2 * 2**20)
    bad = hash_bytes(longer[: 2**20])
    bucket, path = r._bk(r.object_key(bad))
    r.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=longer)
    with pytest.raises(CorruptObject):
        download(objects, r, bad, 2**20)
    assert not objects.exists(bad)
