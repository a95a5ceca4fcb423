"""The failure record: one shape, built in one place, read in one place (irods_ingest.failures).

The REQUEUE script is the one producer outside Python: its dead-letter records must read
back into the same fields, with the same types.
"""

from __future__ import annotations

import json

import pytest

from irods_ingest.config import JobConfig, Operation
from irods_ingest.failures import UNREADABLE, failure_record, is_failure, read_failure_record
from irods_ingest.store.connection import connect
from testsupport.jobparts import JobParts


def test_a_record_round_trips_through_its_stored_form() -> None:
    record = failure_record("/src/a.txt", "boom", attempts=2, task="t1", kind="files", traceback="x" * 5000)
    stored = read_failure_record(json.dumps(record))
    assert stored == record
    assert len(stored["traceback"]) == 4000 and is_failure(stored)
    skipped = failure_record("/src/p", "pipe", attempts=1, task="t2", kind="scan", outcome="skipped")
    assert not is_failure(read_failure_record(json.dumps(skipped)))


@pytest.mark.parametrize("raw", [b"\xff not json", b"[1]", b'"text"', b"null", b"42"])
def test_anything_that_is_not_a_record_reads_as_one_saying_so(raw: bytes) -> None:
    assert read_failure_record(raw) == {"path": "", "reason": UNREADABLE, "kind": "invalid"}


def test_fields_of_the_wrong_type_are_dropped_not_trusted() -> None:
    raw = json.dumps({"path": 7, "reason": "r", "attempts": True, "time": 5, "outcome": "pwned", "extra": "x"})
    assert read_failure_record(raw) == {"reason": "r", "time": 5.0}


@pytest.mark.redis
def test_the_requeue_scripts_dead_letter_reads_as_a_failure_record(redis_url: str, tmp_path: object) -> None:
    client = connect(redis_url)
    job = JobParts.of(client, "dead-letter")
    job.runs.start(JobConfig(job_name="dead-letter", source_path="/src", target_collection="/tempZone/home/x",
                             operation=Operation.NO_OP))
    claimed = job.queue.claim("gone-worker", 0)
    assert claimed is not None
    client.sadd(job.keys.claimers, "gone-worker")  # registered once, its heartbeat long expired
    moved, dead = job.queue.requeue_dead_workers(max_attempts=0)  # gone-worker has no heartbeat: dead; one attempt is too many
    assert (moved, dead) == (0, 1)
    (record,) = job.failures.records()
    assert set(record) == {"task", "kind", "path", "attempts", "reason", "time", "files"}
    assert record["kind"] == "scan" and record["attempts"] == 1 and isinstance(record["time"], float)
    assert "a worker died" in record["reason"] and is_failure(record)
