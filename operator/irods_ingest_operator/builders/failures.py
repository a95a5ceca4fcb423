"""The failures ConfigMap ``<job>-failures``: a run's failure records for users who may read
ConfigMaps in the job's namespace but not Redis (the ``kubectl ingest failures`` plugin).

Bounded: the newest :data:`MAX_FAILURES_SHOWN` records, each cut as ``recentFailures`` entries
are (path 1024, reason 512 characters), and at most :data:`MAX_FAILURES_BYTES` of JSON in all,
well under the 1 MiB an object may hold. Keys (constants.FAILURES_KEY_*):

- ``run``: the run id; ``state``: running | finishing | done | failed | stopped;
- ``failures.json``: a JSON array, newest first, of ``{path, reason, attempts, time, kind, outcome?}``
  (``time`` RFC 3339; ``kind`` the task kind: files, scan, delete, finalize; ``outcome``
  skipped or rejected when the entry was not simply a failure);
- ``recorded``: how many records the run holds (the array may show fewer: the bounds above);
- ``notRecorded``: failures the run counted beyond its ``maxFailureRecords`` (never recorded).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from irods_ingest.actions import RunStatus
from irods_ingest_operator.builders.names import failures_config_map_name, failures_labels
from irods_ingest_operator.builders.status import failure_summary
from irods_ingest_operator.builders.text import shorten
from irods_ingest_operator.constants import (
    FAILURES_KEY_NOT_RECORDED,
    FAILURES_KEY_RECORDED,
    FAILURES_KEY_RECORDS,
    FAILURES_KEY_RUN,
    FAILURES_KEY_STATE,
)
from irods_ingest_operator.refs import JobRef

MAX_FAILURES_SHOWN: Final = 500
MAX_FAILURES_BYTES: Final = 768 * 1024
_OUTCOMES: Final = frozenset({"failed", "skipped", "rejected"})
MAX_KIND_CHARS: Final = 32


def failures_signature(run: RunStatus, recorded: int) -> str:
    """What the ConfigMap shows, in one string: it is written again only when this changes."""
    return f"{run.run_id}|{run.state}|{recorded}|{run.counters.get('failures_dropped', 0)}"


def failure_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """One entry: a ``recentFailures`` summary (checked and cut), its kind and its outcome."""
    entry = failure_summary(record)
    entry["kind"] = shorten(str(record.get("kind") or "unknown"), MAX_KIND_CHARS)
    outcome = record.get("outcome")
    if isinstance(outcome, str) and outcome in _OUTCOMES:
        entry["outcome"] = outcome
    return entry


def build_failures_config_map(job: JobRef, run: RunStatus, records: Sequence[Mapping[str, Any]],
                              recorded: int) -> dict[str, Any]:
    """The ConfigMap for ``run``, from its records (newest first), owned by the SyncJob."""
    entries: list[dict[str, Any]] = []
    size = 2  # the brackets
    for record in records[:MAX_FAILURES_SHOWN]:
        entry = failure_entry(record)
        cost = len(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()) + 1
        if size + cost > MAX_FAILURES_BYTES:
            break
        entries.append(entry)
        size += cost
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": failures_config_map_name(job.name),
            "namespace": job.namespace,
            "labels": failures_labels(job.name),
            "ownerReferences": [job.owner_reference()],
        },
        "data": {
            FAILURES_KEY_RUN: run.run_id or "",
            FAILURES_KEY_STATE: run.state,
            FAILURES_KEY_RECORDS: json.dumps(entries, ensure_ascii=False, separators=(",", ":")),
            FAILURES_KEY_RECORDED: str(recorded),
            FAILURES_KEY_NOT_RECORDED: str(int(run.counters.get("failures_dropped", 0))),
        },
    }
