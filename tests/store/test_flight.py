"""pivot_store.flight: a claim excludes others, is released by its holder or its death."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pivot_store import flight
from pivot_store.errors import InvalidOid

FP = "0123456789abcdef"


def test_a_held_flight_makes_the_next_claim_wait_then_time_out(tmp_path: Path) -> None:
    a = flight.claim(tmp_path, FP, 1)
    assert a.held and not a.waited
    start = time.monotonic()
    b = flight.claim(tmp_path, FP, 0.3)
    assert not b.held and b.waited and b.timed_out and time.monotonic() - start >= 0.3
    a.release()
    c = flight.claim(tmp_path, FP, 1)
    assert c.held and not c.waited
    c.release()
    c.release()  # twice is harmless
    assert list(tmp_path.iterdir()) == []


def test_a_killed_holder_releases_its_flight(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from pivot_store import flight;"
        f"f = flight.claim(Path(sys.argv[1]), {FP!r}, 5); print('held', flush=True);"
        " time.sleep(60)"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        assert flight.claim(tmp_path, FP, 0.2).timed_out
        p.kill()
        p.wait()
        got = flight.claim(tmp_path, FP, 5)
        assert got.held and got.waited is False
        got.release()
    finally:
        p.kill()


def test_a_fingerprint_that_is_not_an_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOid):
        flight.claim(tmp_path, "../../etc/x", 1)
