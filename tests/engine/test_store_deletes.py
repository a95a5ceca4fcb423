"""The queue's bookkeeping for deletions, against a real redis-server: the join that removes
a vanished collection after its contents, the redelivery mark, the failure-record cap."""

from __future__ import annotations

import json

import pytest

from irods_ingest.config import JobConfig
from irods_ingest.jobstate.failure_log import clipped
from irods_ingest.queue import TaskOutcome
from irods_ingest.store.connection import connect
from irods_ingest.tasks import Task, TaskKind
from testsupport.jobparts import JobParts

pytestmark = pytest.mark.redis

VANISHED = "/tempZone/home/rods/x/gone"


def _config(**changes: object) -> JobConfig:
    return JobConfig(job_name="job-d", source_path="/data", target_collection="/tempZone/home/rods/x").with_changes(**changes)


@pytest.fixture
def job(redis_url: str) -> JobParts:
    return JobParts.of(connect(redis_url), "job-d")


def _claim(job: JobParts, worker: str = "w1") -> tuple[bytes, Task]:
    claimed = job.queue.claim(worker, 0)
    assert claimed is not None
    return claimed


def _claim_all(job: JobParts) -> list[tuple[bytes, Task]]:
    claimed = []
    while (got := job.queue.claim("w1", 0)) is not None:
        claimed.append(got)
    return claimed


def test_a_vanished_collection_is_removed_once_after_its_last_task(job: JobParts) -> None:
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    raw, scan = _claim(job)
    first_page = Task(TaskKind.DELETE, run_id, collections=(VANISHED,))
    assert job.queue.ack("w1", raw, scan, TaskOutcome(enqueue=[first_page])) == "ok"

    raw, page = _claim(job)
    children = [Task(TaskKind.DELETE, run_id, paths=(f"{VANISHED}/{i}",), after=VANISHED) for i in range(3)]
    next_page = Task(TaskKind.DELETE, run_id, collections=(VANISHED,), cursor="o:2", after=VANISHED)
    removal = Task(TaskKind.DELETE, run_id, collections=(VANISHED,), remove=True)
    opened = TaskOutcome(enqueue=[*children, next_page], join_open=[(VANISHED, 4, removal)])
    assert job.queue.ack("w1", raw, page, opened) == "ok"

    claimed = {task.id: (raw, task) for raw, task in _claim_all(job)}
    assert set(claimed) == {t.id for t in [*children, next_page]}
    # the next page adds a task of its own before it counts itself down
    raw, task = claimed.pop(next_page.id)
    more = Task(TaskKind.DELETE, run_id, paths=(f"{VANISHED}/9",), after=VANISHED)
    assert job.queue.ack("w1", raw, task, TaskOutcome(enqueue=[more], join_add={VANISHED: 1}, join_done=VANISHED)) == "ok"
    for raw, task in [*claimed.values(), *_claim_all(job)]:
        assert job.runs.status().queued == 0  # nothing released before the last one
        outcome = TaskOutcome(join_done=task.after)
        outcome.count("files_deleted")
        assert job.queue.ack("w1", raw, task, outcome) == "ok"
        assert job.queue.ack("w1", raw, task, outcome) == "stale"  # an ack applies once
    released = _claim_all(job)
    assert [t.remove for _, t in released] == [True] and released[0][1].collections == (VANISHED,)
    assert job.runs.status().counters["files_deleted"] == 4
    assert job.client.hgetall(job.keys.joins) == {}


def test_a_requeued_task_is_marked_redelivered_and_a_dead_lettered_one_releases_its_join(job: JobParts) -> None:
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    raw, scan = _claim(job)
    child = Task(TaskKind.DELETE, run_id, paths=(f"{VANISHED}/a",), after=VANISHED)
    removal = Task(TaskKind.DELETE, run_id, collections=(VANISHED,), remove=True)
    assert job.queue.ack("w1", raw, scan, TaskOutcome(enqueue=[child], join_open=[(VANISHED, 1, removal)])) == "ok"
    _claim(job)
    job.queue.stop_heartbeat("w1")  # w1 dies
    assert job.queue.requeue_dead_workers(max_attempts=5) == (1, 0)
    job.queue.heartbeat("w1", 10)
    raw, again = _claim(job)
    assert again.id == child.id and again.redelivered and not child.redelivered
    job.queue.stop_heartbeat("w1")
    assert job.queue.requeue_dead_workers(max_attempts=1) == (0, 1)  # a second death: dead-lettered
    released = _claim_all(job)
    assert [t.id for _, t in released] == [removal.id]  # the collection's removal is not held up


def test_failure_records_are_capped_redacted_and_clipped(redis_url: str) -> None:
    job = JobParts.of(connect(redis_url), "job-d", redact=lambda text: text.replace("s3cr3t", "***"))
    job.runs.start(_config(max_failure_records=3))
    _, config = job.stored.run_and_config()  # as a worker does before every task: the cap comes with the config
    assert config is not None
    job.queue.heartbeat("w1", 10)
    raw, scan = _claim(job)
    outcome = TaskOutcome(error="run failed: s3cr3t")
    for i in range(5):
        outcome.failures.append({"path": f"/p/{i}", "reason": "why s3cr3t " + "r" * 5000,
                                 "traceback": "tb " + "t" * 9000 + " s3cr3t end", "kind": "files"})
    assert job.queue.ack("w1", raw, scan, outcome, max_failure_records=config.max_failure_records) in ("ok", "finishing")
    records = job.failures.records()
    assert len(records) == 3 and job.runs.status().counters["failures_dropped"] == 2
    for record in records:
        assert "s3cr3t" not in json.dumps(record)
        assert record["reason"].startswith("why *** r") and len(record["reason"]) <= 2048
        assert record["traceback"].endswith("t *** end") and len(record["traceback"]) <= 4000
    assert job.runs.status().error == "run failed: ***"


def test_clipped_bounds_the_escaped_size() -> None:
    assert clipped("short", 10) == "short"
    wide = "\u00e9" * 5000  # six bytes each once escaped
    cut = clipped(wide, 4000)
    assert len(json.dumps(cut)) - 2 <= 4000 and cut.endswith("[...]")
    tail = clipped("x" * 100 + "END", 20, keep_end=True)
    assert tail.startswith("[...]") and tail.endswith("END") and len(tail) <= 20
