"""The failure record: what a run remembers about each thing that did not go through.

One shape, built by :func:`failure_record` (every Python producer: task execution, the
worker's task boundary, rejected tasks) and read by :func:`read_failure_record` (every
reader: status, the CLI's ``failures``, ``retry``). The one other producer is the REQUEUE
Lua script (irods_ingest.queue.lua), which dead-letters a task whose worker died too often;
it writes the same fields (``tests/engine/test_failures.py`` holds the two together).

Records live in Redis as JSON, newest first, at most ``max_failure_records`` per run.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final, Literal, TypedDict

# What became of the entry; absent means it failed.
Outcome = Literal["failed", "skipped", "rejected"]
MAX_TRACEBACK_CHARS: Final = 4000
UNREADABLE: Final = "(unreadable failure record)"


class FailureRecord(TypedDict, total=False):
    path: str  # the source path (file or directory), a logical path (deletions), or "" (the run)
    reason: str  # why, for the user: names the fix where one is known
    attempts: int  # deliveries it took
    time: float  # when (epoch seconds)
    task: str  # the task's id
    kind: str  # the task's kind: scan | files | delete | finalize; unknown (not a task); invalid (not a record)
    outcome: Outcome  # absent: failed
    traceback: str  # a handler's or an internal error's traceback (its end)
    collection: bool  # a deletion of a collection (retry removes a collection, not an object)
    files: int  # a dead-lettered task: the files it held
    payload: str  # a rejected payload that was no task: its start


def failure_record(
    path: str,
    reason: str,
    *,
    attempts: int,
    task: str,
    kind: str,
    outcome: Outcome | None = None,
    traceback: str = "",
    collection: bool = False,
    payload: str = "",
) -> FailureRecord:
    """A failure record, as every Python producer writes it."""
    record: FailureRecord = {
        "path": path,
        "reason": reason,
        "attempts": attempts,
        "time": round(time.time(), 3),
        "task": task,
        "kind": kind,
    }
    if outcome is not None:
        record["outcome"] = outcome
    if traceback:
        record["traceback"] = traceback[-MAX_TRACEBACK_CHARS:]
    if collection:
        record["collection"] = True
    if payload:
        record["payload"] = payload
    return record


def read_failure_record(raw: bytes | str) -> FailureRecord:
    """A stored record as a :class:`FailureRecord`, whatever was stored: workers write records
    (and anyone holding a worker's credential could write anything), so a value that is not a
    JSON object comes back as a record saying so, never as an exception in the reader."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return {"path": "", "reason": UNREADABLE, "kind": "invalid"}
    record: FailureRecord = {}
    for name, kind in _FIELDS.items():
        if name in data and isinstance(data[name], kind) and not (kind is int and isinstance(data[name], bool)):
            record[name] = data[name]  # type: ignore[literal-required]
    if isinstance(data.get("attempts"), float):
        record["attempts"] = int(data["attempts"])
    if isinstance(data.get("time"), int) and not isinstance(data.get("time"), bool):
        record["time"] = float(data["time"])
    if record.get("outcome") not in (None, "failed", "skipped", "rejected"):
        del record["outcome"]
    return record


_FIELDS: Final[dict[str, type]] = {
    "path": str, "reason": str, "attempts": int, "time": float, "task": str, "kind": str, "outcome": str,
    "traceback": str, "collection": bool, "files": int, "payload": str,
}  # fmt: skip


def is_failure(record: FailureRecord) -> bool:
    """Whether the record counts as a failure (not a skipped or rejected entry)."""
    return record.get("outcome", "failed") == "failed"
