"""What ``kubectl ingest`` prints: pure functions of the SyncJob and its failures ConfigMap."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from irods_ingest_operator.constants import (
    FAILURES_KEY_NOT_RECORDED,
    FAILURES_KEY_RECORDED,
    FAILURES_KEY_RECORDS,
    FAILURES_KEY_RUN,
    FAILURES_KEY_STATE,
)

TABLE_REASON_CHARS: Final = 100
FILE_COUNTS: Final = ("discovered", "synced", "unchanged", "skipped", "excluded", "failed", "deleted")


@dataclass(frozen=True)
class FailureReport:
    """The failures ConfigMap, read defensively (a user may have edited it)."""

    run: str
    state: str
    records: list[dict[str, Any]]
    recorded: int
    not_recorded: int

    @classmethod
    def from_config_map(cls, config_map: Mapping[str, Any]) -> FailureReport:
        data = config_map.get("data") or {}
        try:
            records = json.loads(data.get(FAILURES_KEY_RECORDS) or "[]")
        except ValueError:
            records = []
        records = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
        return cls(run=str(data.get(FAILURES_KEY_RUN) or ""), state=str(data.get(FAILURES_KEY_STATE) or ""),
                   records=records, recorded=_int(data.get(FAILURES_KEY_RECORDED), len(records)),
                   not_recorded=_int(data.get(FAILURES_KEY_NOT_RECORDED), 0))

    def to_json(self, syncjob: str) -> str:
        return json.dumps({"syncjob": syncjob, "run": self.run, "state": self.state, "recorded": self.recorded,
                           "notRecorded": self.not_recorded, "failures": self.records}, indent=2, ensure_ascii=False)


def failures_table(syncjob: str, report: FailureReport, current_run: str | None) -> str:
    lines = [_failures_summary(syncjob, report, current_run)]
    if report.records:
        rows = [("PATH", "REASON", "ATTEMPTS", "TIME")]
        for record in report.records:
            reason = _shorten(str(record.get("reason") or ""), TABLE_REASON_CHARS)
            if record.get("outcome") in ("skipped", "rejected"):
                reason = f"({record['outcome']}) {reason}"
            rows.append((str(record.get("path") or "(run)"), reason, str(record.get("attempts", "")),
                         _time(record.get("time"))))
        lines += _columns(rows)
    return "\n".join(lines)


def _failures_summary(syncjob: str, report: FailureReport, current_run: str | None) -> str:
    head = f"syncjob {syncjob}: run {report.run or '(none)'} ({report.state or 'unknown'})"
    if not report.recorded and not report.not_recorded:
        text = f"{head}: no failures recorded."
    else:
        text = f"{head}: {report.recorded} failure{'s' if report.recorded != 1 else ''} recorded"
        if len(report.records) < report.recorded:
            text += f" (the report keeps the newest {len(report.records)})"
        text += "."
    if report.not_recorded:
        text += (f"\n{report.not_recorded} more failed but were not recorded (beyond the job's failure record"
                 " limit): `kubectl ingest retry` runs the whole job again then, and its change cache skips"
                 " what already synced.")
    if current_run and report.run and current_run != report.run:
        text += f"\nNote: the SyncJob's current run is {current_run}; this report is still of run {report.run}."
    return text


def no_report_message(syncjob: str, config_map: str, syncjob_body: Mapping[str, Any]) -> str:
    status = syncjob_body.get("status") or {}
    failed = (status.get("files") or {}).get("failed")
    known = f" (its status counts {failed} failed files)" if failed else ""
    return (f"No failure report for syncjob {syncjob} yet{known}: the ConfigMap {config_map} does not exist."
            " The operator writes it once the job has a run; check `kubectl ingest status` and"
            " `kubectl describe syncjob` if it never appears.")


def status_lines(syncjob: str, body: Mapping[str, Any]) -> str:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    run = status.get("run") or {}
    head = f"syncjob {syncjob}: {phase_of(body)}"
    if run.get("id"):
        head += f" — run {run['id']}"
        if run.get("startTime"):
            head += f", started {run['startTime']}"
        if run.get("completionTime"):
            head += f", ended {run['completionTime']} ({run.get('outcome', 'ended')})"
    lines = [head]
    if status.get("progress"):
        lines.append(f"progress: {status['progress']}")
    files = status.get("files") or {}
    if files:
        counts = ", ".join(f"{name} {files[name]}" for name in FILE_COUNTS if name in files)
        synced_bytes = (status.get("bytes") or {}).get("synced")
        lines.append(f"files: {counts}" + (f"; bytes synced {synced_bytes}" if synced_bytes is not None else ""))
    workers = status.get("workers") or {}
    if workers:
        lines.append(f"workers: {workers.get('desired', 0)} desired, {workers.get('ready', 0)} ready")
    times = [f"{label} {status[key]}" for key, label in (("lastSyncTime", "last sync"), ("nextSyncTime", "next sync"))
             if status.get(key)]
    if spec.get("schedule"):
        times.insert(0, f"schedule {spec['schedule']}")
    if spec.get("suspend"):
        times.append("suspended")
    if times:
        lines.append("; ".join(times))
    generation, observed = (body.get("metadata") or {}).get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        lines.append(f"spec generation {generation} not observed yet (status is of generation {observed})")
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("conditions:")
        lines += [f"  {c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}".rstrip(": ")
                  for c in conditions]
    failed = files.get("failed") or 0
    if failed or status.get("failuresNotRecorded"):
        lines.append(f"failed files: {failed} — list them with `kubectl ingest failures {body['metadata']['name']}`")
    return "\n".join(lines)


def phase_of(body: Mapping[str, Any]) -> str:
    """status.phase when the operator writes one; otherwise read from the conditions."""
    status = body.get("status") or {}
    if status.get("phase"):
        return str(status["phase"])
    conditions = {c.get("type"): c for c in status.get("conditions") or []}

    def holds(kind: str) -> bool:
        return (conditions.get(kind) or {}).get("status") == "True"

    if not status:
        return "Pending (the operator has not reported yet)"
    if holds("Stalled"):
        return "Invalid"
    if (body.get("spec") or {}).get("suspend"):
        return "Suspended"
    if holds("Reconciling"):
        return "Running"
    if holds("Failed"):
        return "Failed"
    if holds("Succeeded"):
        return "Succeeded"
    return "Waiting"


def run_is_active(body: Mapping[str, Any]) -> bool:
    return phase_of(body) == "Running"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return str(value)
    return str(value or "")


def _int(value: Any, default: int) -> int:
    try:
        return max(int(str(value)), 0)
    except (TypeError, ValueError):
        return default
