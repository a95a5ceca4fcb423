"""Flat directories larger than a scan page, through the real queue and worker (NoOp: Redis only).

A directory of more entries than ``IRODS_INGEST_SCAN_PAGE_ENTRIES`` is listed in pages by one
SCAN task, each page committed with the record of its names (execute.scan_pages). These tests
use a page of 1 000 entries so that 50 000 files make 50 pages: every file must be discovered
and synced exactly once, the change cache written and judged, and no acknowledgement or page
commit may carry more than about a page -- also when the listing is interrupted and redone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig, Operation, cache_generation
from irods_ingest.irods_io.session import IrodsSettings
from irods_ingest.jobstate import ChangeCache, FailureLog, RunState, StoredJob
from irods_ingest.queue import TaskQueue
from irods_ingest.store.connection import connect
from irods_ingest.worker import WorkerOptions, run_worker

pytestmark = pytest.mark.redis

UNUSED_IRODS = IrodsSettings(host="127.0.0.1", port=1, user="nobody", zone="tempZone", password="x")
PAGE = 1_000
FILES = 50_000


def make_flat(directory: Path, count: int, prefix: str = "f") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        os.close(os.open(directory / f"{prefix}{i:06d}.dat", os.O_CREAT | os.O_WRONLY, 0o644))


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flat") / "src"
    make_flat(root / "big", FILES)
    (root / "big" / "sub").mkdir()  # a subdirectory among the files: scanned once too
    (root / "big" / "sub" / "inner.dat").write_bytes(b"i")
    (root / "small").mkdir()
    (root / "small" / "s.dat").write_bytes(b"s")
    return root


@pytest.fixture
def paged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A page of PAGE entries; yields the sizes (bytes) of every acknowledgement and page commit."""
    monkeypatch.setenv("IRODS_INGEST_SCAN_PAGE_ENTRIES", str(PAGE))
    sizes: list[int] = []
    ack, progress = TaskQueue.ack, TaskQueue.progress

    def measured(outcome: Any) -> int:
        return (sum(len(t.encode()) for t in outcome.enqueue)
                + len(json.dumps([outcome.counters, outcome.cache_set, outcome.cache_delete, outcome.failures])))

    def ack_measured(self: TaskQueue, worker_id: str, raw: bytes, task: Any, outcome: Any, **kw: Any) -> str:
        sizes.append(measured(outcome))
        return ack(self, worker_id, raw, task, outcome, **kw)

    def progress_measured(self: TaskQueue, worker_id: str, raw: bytes, task: Any, outcome: Any, **kw: Any) -> str:
        sizes.append(measured(outcome) + len(kw.get("record", "")))
        return progress(self, worker_id, raw, task, outcome, **kw)

    monkeypatch.setattr(TaskQueue, "ack", ack_measured)
    monkeypatch.setattr(TaskQueue, "progress", progress_measured)
    yield sizes


def config(name: str, root: Path, **changes: object) -> JobConfig:
    return JobConfig(job_name=name, source_path=str(root), target_collection="/tempZone/home/rods/flat",
                     operation=Operation.NO_OP, files_per_task=50).with_changes(**changes)


def work(redis_url: str, job: str, concurrency: int = 2) -> int:
    return run_worker(WorkerOptions(jobs=[job], redis_url=redis_url, concurrency=concurrency, exit_when_idle=True,
                                    irods_settings=UNUSED_IRODS), install_signals=False)


def cached_names(redis_url: str, job: str, directory: str) -> list[str]:
    stored = StoredJob(connect(redis_url), job).config()
    assert stored is not None
    cache = ChangeCache(connect(redis_url), job)
    return [n for batch in cache.field_names(cache_generation(stored), directory) for n in batch]


def leftover_listing_keys(redis_url: str, job: str) -> list[str]:
    return [k.decode() for k in connect(redis_url).scan_iter(match=f"ii:{{{job}}}:seen*")]


def test_a_flat_directory_larger_than_a_page_is_synced_once_with_bounded_acks(
    redis_url: str, flat: Path, paged: list[int]
) -> None:
    client = connect(redis_url)
    start_job(client, config("flat", flat))
    assert work(redis_url, "flat") == 0
    status = RunState(client, "flat").status()
    c = status.counters
    assert status.state == "done", (status, FailureLog(client, "flat").records()[:3])
    total = FILES + 2
    assert (c["files_discovered"], c["files_synced"], c["files_failed"], c["files_unchanged"]) == (total, total, 0, 0)
    # directories: root, big, big/sub, small; batches: 1000 per full page of 50-name batches
    assert c["tasks_done"] == c["tasks_enqueued"] - 1  # + finalize, which its own ack does not count as done
    assert len(cached_names(redis_url, "flat", "big")) == FILES
    assert not leftover_listing_keys(redis_url, "flat")
    # Every step wrote at most about a page (1 000 names of ~12 bytes, as tasks and as the
    # page's record): the directory's 50 000 names never travel in one step.
    assert max(paged) < 60_000, sorted(paged)[-5:]


def test_a_paged_rescan_compares_and_judges_the_cache_a_page_at_a_time(
    redis_url: str, tmp_path: Path, paged: list[int]
) -> None:
    root = tmp_path / "src"
    make_flat(root, 5_000)
    client = connect(redis_url)
    start_job(client, config("rescan", root))
    assert work(redis_url, "rescan") == 0
    first = RunState(client, "rescan").status().counters
    assert first["files_synced"] == 5_000
    # 1 % changed, 100 removed, 30 new
    for i in range(0, 5_000, 100):
        (root / f"f{i:06d}.dat").write_bytes(b"changed")
    for i in range(1, 5_000, 50):
        (root / f"f{i:06d}.dat").unlink()
    make_flat(root, 30, prefix="new")
    start_job(client, config("rescan", root))
    assert work(redis_url, "rescan") == 0
    status = RunState(client, "rescan").status()
    c = status.counters
    assert status.state == "done", status
    assert (c["files_discovered"], c["files_synced"], c["files_unchanged"]) == (4_930, 80, 4_850)
    names = cached_names(redis_url, "rescan", "")
    assert len(names) == len(set(names)) == 4_930  # stale entries of the removed files are gone
    assert not any(n.startswith("f") and int(n[1:7]) % 50 == 1 for n in names)
    assert not leftover_listing_keys(redis_url, "rescan")
    assert max(paged) < 60_000


class _Crash(SystemExit):
    """Ends a worker thread quietly (threading ignores SystemExit), its task left claimed."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("crash_after", [1, 7])
def test_an_interrupted_paged_listing_resumes_by_name_and_counts_every_file_once(
    redis_url: str, tmp_path: Path, paged: list[int], monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    """The worker dies after ``crash_after`` page commits of the root's listing; its task is
    handed back (marked redelivered) and the next worker lists the directory again: names
    the committed pages recorded are dropped before anything is counted."""
    root = tmp_path / "src"
    make_flat(root, 12_345)
    (root / "d1").mkdir()
    (root / "d1" / "x.dat").write_bytes(b"x")
    client = connect(redis_url)
    job = f"crash{crash_after}"
    start_job(client, config(job, root))
    commits = 0
    progress = TaskQueue.progress

    def crashing(self: TaskQueue, *args: Any, **kw: Any) -> str:
        nonlocal commits
        result = progress(self, *args, **kw)
        commits += 1
        if commits == crash_after:
            raise _Crash()
        return result

    monkeypatch.setattr(TaskQueue, "progress", crashing)
    work(redis_url, job, concurrency=1)  # the thread ends at the crash; closing it hands the task back
    monkeypatch.setattr(TaskQueue, "progress", progress)
    mid = RunState(client, job).status()
    # the committed pages counted (a page's entry may be the subdirectory, not a file)
    assert mid.state == "running" and crash_after * PAGE - 1 <= mid.counters["files_discovered"] <= crash_after * PAGE
    assert work(redis_url, job) == 0
    status = RunState(client, job).status()
    c = status.counters
    assert status.state == "done", (status, FailureLog(client, job).records()[:3])
    assert (c["files_discovered"], c["files_synced"], c["files_failed"]) == (12_346, 12_346, 0)
    assert c["tasks_done"] == c["tasks_enqueued"] - 1
    assert len(cached_names(redis_url, job, "")) == 12_345
    assert not leftover_listing_keys(redis_url, job)


def test_a_warm_shutdown_mid_listing_hands_the_directory_back_to_be_resumed(
    redis_url: str, tmp_path: Path, paged: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the 3rd page commit the worker is asked to stop: the listing hands its directory
    back as a redelivered scan (no attempt counted) and the next claim resumes it by name."""
    from dataclasses import replace as dc_replace

    from irods_ingest.worker import thread

    root = tmp_path / "src"
    make_flat(root, 7_777)
    client = connect(redis_url)
    start_job(client, config("warm", root))
    commits = 0
    stops_left = 1
    progress = TaskQueue.progress

    def counting(self: TaskQueue, *args: Any, **kw: Any) -> str:
        nonlocal commits
        commits += 1
        return progress(self, *args, **kw)

    def stopping_once() -> bool:
        nonlocal stops_left
        if commits >= 3 and stops_left:
            stops_left -= 1
            return True
        return False

    real_context = thread.RunContext
    monkeypatch.setattr(TaskQueue, "progress", counting)
    monkeypatch.setattr(thread, "RunContext", lambda **kw: dc_replace(real_context(**kw), stopping=stopping_once))
    assert work(redis_url, "warm", concurrency=1) == 0
    status = RunState(client, "warm").status()
    c = status.counters
    assert stops_left == 0 and status.state == "done", status
    assert (c["files_discovered"], c["files_synced"], c["files_failed"]) == (7_777, 7_777, 0)
    assert c["tasks_done"] == c["tasks_enqueued"] - 1
    assert len(cached_names(redis_url, "warm", "")) == 7_777
    assert not leftover_listing_keys(redis_url, "warm")
