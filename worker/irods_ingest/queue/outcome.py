"""What one processed task changes: applied atomically with its ack (:meth:`TaskQueue.ack`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from irods_ingest.failures import FailureRecord
from irods_ingest.jobstate.runs import COUNTERS
from irods_ingest.tasks import Task

_COUNTER_NAMES = frozenset(COUNTERS)


@dataclass
class TaskOutcome:
    """Everything one processed task changes, applied atomically with its ack."""

    counters: dict[str, int] = field(default_factory=dict)
    enqueue: list[Task] = field(default_factory=list)
    delay: list[tuple[float, Task]] = field(default_factory=list)  # (due, task): a retry, later
    failures: list[FailureRecord] = field(default_factory=list)
    cache_set: dict[str, dict[str, str]] = field(default_factory=dict)  # directory -> name -> value
    cache_delete: dict[str, list[str]] = field(default_factory=dict)  # directory -> names
    finalize: bool = False  # the FINALIZE task: close the run
    error: str = ""  # the run's error (the run fails)
    cache_generation: str = ""  # of cache_set / cache_delete
    # Deleting a vanished collection (keys.py, ``joins``): collections whose removal now waits
    # for this many of the enqueued tasks, with the task that removes them once they are done;
    # more tasks to wait for; the collection one of whose tasks this was ("" for none).
    join_open: list[tuple[str, int, Task]] = field(default_factory=list)
    join_add: dict[str, int] = field(default_factory=dict)
    join_done: str = ""
    # Directories listed in pages (execute.scan_pages) that this task finished and judged: the
    # ack removes their listing records (keys.py: seen, seen pages) in the same step.
    seen_done: list[str] = field(default_factory=list)

    def count(self, name: str, delta: int = 1) -> None:
        if name not in _COUNTER_NAMES:
            raise ValueError(f"unknown counter {name}")
        self.counters[name] = self.counters.get(name, 0) + delta
