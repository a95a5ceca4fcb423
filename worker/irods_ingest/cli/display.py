"""What the CLI prints: the live progress line and the final summary."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from irods_ingest.actions import RunStatus


# ---------------------------------------------------------------------------- output
def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def progress_line(status: RunStatus, started: float) -> str:
    c = status.counters
    done = c["files_synced"] + c["files_unchanged"] + c["files_failed"] + c["files_skipped"]
    total = max(c["files_discovered"] + c["files_skipped"], done)
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done / elapsed
    fraction = done / total if total else 0.0
    width = 24
    bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
    eta = (total - done) / rate if rate > 0 and status.active else 0
    return (
        f"[{bar}] {done}/{total} files {fraction:4.0%}  {human_bytes(c['bytes_synced'])}/{human_bytes(c['bytes_discovered'])}"
        f"  {rate:,.0f} files/s  ETA {eta:,.0f}s  failed {c['files_failed']}  queued {status.queued} in-flight {status.in_flight}"
    )


class ProgressBar:
    """The live progress line on stderr: redrawn in place on a terminal, a line every 2 s
    otherwise, and the last status on a line of its own (an :class:`irods_ingest.actions.local.Progress`)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._started: float | None = None
        self._last_print = 0.0

    def update(self, status: RunStatus) -> None:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if self._tty or now - self._last_print > 2:
            self._stream.write(("\r" if self._tty else "") + progress_line(status, self._started) + ("" if self._tty else "\n"))
            self._stream.flush()
            self._last_print = time.monotonic()

    def finish(self, status: RunStatus) -> None:
        started = time.monotonic() if self._started is None else self._started
        self._stream.write(("\r" if self._tty else "") + progress_line(status, started) + "\n")


def summary(status: RunStatus) -> str:
    c = status.counters
    took = f" in {status.ended - status.started:.1f}s" if status.started and status.ended else ""
    return (
        f"job {status.job} run {status.run_id}: {status.state}{took} — discovered {c['files_discovered']}, "
        f"synced {c['files_synced']} ({human_bytes(c['bytes_synced'])}), unchanged {c['files_unchanged']}, "
        f"skipped {c['files_skipped']}, excluded {c['files_excluded']}, failed {c['files_failed']}, deleted {c['files_deleted']}"
        + (f" (and {c['collections_deleted']} collections)" if c.get("collections_deleted") else "")
        + (f"; {c['failures_dropped']} failures not recorded (max_failure_records)" if c.get("failures_dropped") else "")
        + (f"; error: {status.error}" if status.error else "")
    )
