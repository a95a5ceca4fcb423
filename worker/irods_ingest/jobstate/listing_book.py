"""The S3 listing book: what the pages of a multi-page prefix saw, for its last page.

A listing page never sees a whole prefix. Every page but the last adds its names to
``ii:{job}:seen:{run}:{prefix digest}`` before its ack enqueues the next page; the last
page compares the iRODS collection and the change cache against them (what left the
bucket), then forgets them. Each set is listed in the run's index
``ii:{job}:seen-index:{run}`` in the same transaction, so that the run's end removes
whatever a failed listing left by name, never by SCAN (a worker's Redis user reaches only
its own job's keys, by name). Both have a TTL too (``SEEN_TTL_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Iterable

from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import SEEN_TTL_SECONDS, JobKeys


class ListingBook:
    """One job's listing bookkeeping sets (see the module's description)."""

    def __init__(self, client: RedisClient, job: str) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)

    def remember_seen(self, run_id: str, directory: str, names: Iterable[str]) -> None:
        """Add one listing page's names to what run ``run_id`` saw of ``directory`` (idempotent)."""
        key = self.keys.seen(run_id, directory)
        index = self.keys.seen_index(run_id)
        members = list(names)
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            # An empty page still marks the prefix as being listed (the last page checks that).
            pipe.sadd(key, "", *members)
            pipe.expire(key, SEEN_TTL_SECONDS)
            pipe.sadd(index, key)
            pipe.expire(index, SEEN_TTL_SECONDS)
            pipe.execute()

    def seen_started(self, run_id: str, directory: str) -> bool:
        """Whether earlier pages of ``directory`` recorded their names (and nobody finished it yet)."""
        with translated_errors():
            return bool(self.client.exists(self.keys.seen(run_id, directory)))

    def seen_among(self, run_id: str, directory: str, names: list[str]) -> set[str]:
        """Which of ``names`` earlier pages of ``directory`` saw."""
        if not names:
            return set()
        with translated_errors():
            flags = self.client.smismember(self.keys.seen(run_id, directory), names)
        return {name for name, flag in zip(names, flags, strict=True) if flag}

    def forget_seen(self, run_id: str, directory: str) -> None:
        """Drop what the pages of ``directory`` saw (its last page is done with it)."""
        key = self.keys.seen(run_id, directory)
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.unlink(key)
            pipe.srem(self.keys.seen_index(run_id), key)
            pipe.execute()

    def forget_run_seen(self, run_id: str) -> int:
        """Remove every listing bookkeeping set of run ``run_id`` (at its end), and its index.

        Only names of this run's sets are deleted, whatever the index holds. Returns the
        number of sets deleted."""
        index = self.keys.seen_index(run_id)
        prefix = self.keys.seen_prefix(run_id)
        with translated_errors():
            members = [reply_text(m) for m in self.client.smembers(index)]
            own = [m for m in members if m.startswith(prefix) and len(m) > len(prefix)]
            deleted = 0
            for start in range(0, len(own), 500):
                deleted += int(self.client.unlink(*own[start : start + 500]))
            self.client.unlink(index)
        return deleted
