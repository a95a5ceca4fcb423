"""The change cache: per source directory, what each synced entry looked like.

``ii:{job}:cache:{generation}:{directory digest}`` maps an entry's name to
``"<mtime_ns>:<size>"`` (an S3 object: ``"etag:<ETag>:<size>"``); a scan syncs only what
differs. The *generation* is a digest of the settings that decide what "synced" means
(:func:`irods_ingest.config.cache_generation`): other settings, other cache. The marker
``ii:{job}:cached:{generation}`` says that a generation may hold caches at all; its absence
lets a first sync read none.

Reads are here; writes happen in the ACK script, with the outcome of the task that synced
the entries (:class:`irods_ingest.queue.TaskOutcome`: ``cache_set``, ``cache_delete``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import JobKeys


class ChangeCache:
    """One job's change caches."""

    def __init__(self, client: RedisClient, job: str) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)

    def entries(self, generation: str, directories: Sequence[str]) -> list[dict[str, str]]:
        """The whole caches of ``directories`` (name -> value), in one round trip."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for directory in directories:
                pipe.hgetall(self.keys.cache(generation, directory))
            replies = pipe.execute()
        return [{reply_text(k): reply_text(v) for k, v in raw.items()} for raw in replies]

    def entries_within(self, generation: str, directories: Sequence[str], limit: int) -> list[dict[str, str] | None]:
        """The whole caches of ``directories`` that hold at most about ``limit`` entries, in one
        round trip; None for a larger one (read it a page of names at a time with
        :meth:`values`). One ``HSCAN 0 COUNT limit`` each: Redis returns a small hash whole
        (cursor 0) and stops a large one after about ``limit`` entries, so memory is bounded
        whatever a directory once held."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for directory in directories:
                pipe.hscan(self.keys.cache(generation, directory), 0, count=limit)
            replies = pipe.execute()
        return [
            {reply_text(k): reply_text(v) for k, v in found.items()} if int(cursor) == 0 else None
            for cursor, found in replies
        ]

    def values(self, generation: str, directory: str, names: Sequence[str]) -> dict[str, str]:
        """The cached values of just ``names`` in ``directory`` (those it has): bounded by the
        names asked for, whatever the directory holds (an S3 listing page)."""
        if not names:
            return {}
        with translated_errors():
            raw = self.client.hmget(self.keys.cache(generation, directory), list(names))
        return {name: reply_text(value) for name, value in zip(names, raw, strict=True) if value is not None}

    def field_names(self, generation: str, directory: str, batch: int = 1000) -> Iterator[list[str]]:
        """Every name cached for ``directory``, in batches (HSCAN: bounded memory)."""
        key = self.keys.cache(generation, directory)
        cursor: int = 0
        while True:
            with translated_errors():
                cursor, found = self.client.hscan(key, cursor, count=batch)
            names = [reply_text(name) for name in found]
            if names:
                yield names
            if not cursor:
                return

    def exists(self, generation: str) -> bool:
        """Whether any directory may have a cache in ``generation`` (False: none has)."""
        with translated_errors():
            return bool(self.client.exists(self.keys.cache_marker(generation)))

    def mark(self, generation: str) -> None:
        """Say that ``generation`` may have caches. Only a hint: saying so is always safe,
        and only the marker's absence promises anything."""
        with translated_errors():
            self.client.set(self.keys.cache_marker(generation), "1")

    def drop_other_generations(self, keep: str) -> int:
        """Delete the caches (and markers) of every generation but ``keep`` (after a settings
        change). SCANs the keyspace: a controller's step, never a worker's. Returns the number
        of cache keys deleted."""
        keep_prefix = f"{self.keys.cache_prefix}{keep}:".encode()
        keep_marker = self.keys.cache_marker(keep).encode()
        marker_prefix = self.keys.cache_marker_prefix.encode()
        deleted = 0
        with translated_errors():
            batch: list[bytes] = []
            # One pass over "cache:*" and "cached:*" (COUNT 1000: a shared Redis may hold millions of keys)
            for key in self.client.scan_iter(match=f"{self.keys.cache_prefix[:-1]}*", count=1000):
                if key.startswith(marker_prefix):
                    if key != keep_marker:
                        self.client.unlink(key)
                    continue
                if not key.startswith(keep_prefix):
                    batch.append(key)
                if len(batch) >= 500:
                    deleted += int(self.client.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(self.client.unlink(*batch))
        return deleted
