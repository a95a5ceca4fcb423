"""Proof that a run lost nothing: every file is accounted for by a counter or a failure record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from irods_ingest.jobstate import RunStatus


def entries_on_disk(root: Path) -> int:
    """Every non-directory entry below ``root`` (files, links, FIFOs, sockets, devices)."""
    return sum(1 for path in root.rglob("*") if path.is_symlink() or not path.is_dir())


def assert_accounted(status: RunStatus, failures: list[dict[str, Any]], *, on_disk: int | None = None) -> None:
    """Counters and failure records agree, and (given ``on_disk``) cover every source entry.

    The engine counts a file once: ``files_discovered`` are the files handed to sync tasks,
    each ending synced, unchanged or failed (with a record); entries the scan set aside are
    skipped, excluded or failed at the scan (unreadable, with a record), never discovered.
    """
    c = status.counters
    # A rejected (forged or malformed) task was never discovered: it holds no file of the source.
    failed_in_sync = sum(1 for f in failures if f.get("kind") == "files" and f.get("outcome") != "rejected")
    failed_at_scan = sum(1 for f in failures if f.get("kind") == "scan" and f.get("outcome") == "failed")
    skipped = sum(1 for f in failures if f.get("outcome") == "skipped")
    assert c["files_discovered"] == c["files_synced"] + c["files_unchanged"] + failed_in_sync, (c, failures)
    assert c["files_skipped"] == skipped, (c, failures)
    if on_disk is not None:
        found = c["files_discovered"] + c["files_skipped"] + c["files_excluded"] + failed_at_scan
        assert found == on_disk, f"{on_disk} entries on disk, {found} accounted for: {c}, {failures}"
