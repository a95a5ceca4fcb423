"""A run's failure records as stored: read back safely, written redacted and bounded.

Records (:class:`irods_ingest.failures.FailureRecord`) live in ``ii:{job}:failures``,
newest first. They are written by the ACK and REQUEUE scripts (the queue's), which keep
the run's first ``max_failure_records`` and count the rest in ``failures_dropped``; before
a record or a run's error reaches them it passes :func:`fit_record` / :func:`fit_error`
here: a worker's secrets replaced (``irods_ingest.redact``), then every text capped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from irods_ingest.failures import FailureRecord, read_failure_record
from irods_ingest.store.connection import RedisClient, translated_errors
from irods_ingest.store.keys import JobKeys

# What one failure record may hold, in bytes of its JSON (as it is stored): a reason, a
# traceback (its end: where it was raised), and any other text field (a path).
MAX_REASON_BYTES = 2048
MAX_TRACEBACK_BYTES = 4000
MAX_RECORD_FIELD_BYTES = 4096
_CLIPPED = "[...]"
# Failure-record fields that identify things rather than describe them: a path names a file
# (a retry redoes it by that name), and a file named like a password is no leak of it.
_NOT_REDACTED = frozenset({"path", "task", "kind", "outcome"})

Redact = Callable[[str], str]


def clipped(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` in at most ``limit`` bytes once JSON-escaped (ASCII-only, as records are
    stored), cut at its end (or, ``keep_end``, at its start) with a marker."""
    if len(json.dumps(text)) - 2 <= limit:
        return text
    budget = max(0, limit - len(_CLIPPED))
    chars = min(len(text), budget)
    while True:
        part = text[len(text) - chars :] if keep_end else text[:chars]
        size = len(json.dumps(part)) - 2
        if size <= budget:
            return _CLIPPED + part if keep_end else part + _CLIPPED
        chars = max(0, min(chars - 1, chars * budget // size))


def fit_error(text: str, redact: Redact | None) -> str:
    """A run's error as it may be stored: redacted, then capped like a reason."""
    if redact is not None and text:
        text = redact(text)
    return clipped(text, MAX_REASON_BYTES)


def fit_record(record: FailureRecord, redact: Redact | None) -> dict[str, Any]:
    """A failure record as it may be stored: secrets redacted, then every text capped
    (redacting first: a cut must never leave the start of a secret behind)."""
    fitted: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, str):
            if redact is not None and value and name not in _NOT_REDACTED:
                value = redact(value)
            if name == "traceback":
                value = clipped(value, MAX_TRACEBACK_BYTES, keep_end=True)
            else:
                value = clipped(value, MAX_REASON_BYTES if name == "reason" else MAX_RECORD_FIELD_BYTES)
        fitted[name] = value
    return fitted


class FailureLog:
    """One job's failure records of its current (or last) run."""

    def __init__(self, client: RedisClient, job: str) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)

    def records(self, limit: int | None = None) -> list[FailureRecord]:
        """The records, newest first. Workers write them (and anyone holding a worker's
        credential could write anything): a record that is not a JSON object comes back as
        one saying so, never as an exception in the reader."""
        end = -1 if limit is None else limit - 1
        with translated_errors():
            raw = self.client.lrange(self.keys.failures, 0, end)
        return [read_failure_record(item) for item in raw]
