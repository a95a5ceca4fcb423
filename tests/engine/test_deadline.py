"""Per-file time limits (irods_ingest.deadline): one watchdog thread serves every deadline."""

from __future__ import annotations

import threading
import time

import pytest

from irods_ingest import deadline as deadline_module
from irods_ingest.deadline import Deadline, FileTimeout


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_block_that_overruns_gets_file_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(FileTimeout), Deadline(0.2) as limit:
        _busy(5)
    assert limit.fired
    assert 0.15 < time.monotonic() - started < 2


def test_a_block_left_in_time_is_never_interrupted_later() -> None:
    for _ in range(200):
        with Deadline(0.05):
            pass
    _busy(0.3)  # every one of those deadlines has expired meanwhile: none may fire here


def test_an_earlier_deadline_fires_while_a_later_one_is_waited_for() -> None:
    outcome: dict[str, float] = {}

    def long_block() -> None:
        with Deadline(30):
            _busy(1.0)  # the watchdog sleeps towards this expiry when the short one arrives
        outcome["long"] = time.monotonic()

    other = threading.Thread(target=long_block)
    other.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(FileTimeout), Deadline(0.1):
        _busy(5)
    outcome["short"] = time.monotonic() - started
    other.join()
    assert outcome["short"] < 0.9
    assert "long" in outcome  # the long block ended normally


def test_left_deadlines_do_not_accumulate() -> None:
    for _ in range(5000):
        with Deadline(3600):
            pass
    assert len(deadline_module._WATCHDOG._heap) <= 2


def test_zero_means_no_limit() -> None:
    with Deadline(0) as limit:
        _busy(0.05)
    assert not limit.fired
