"""Copying change-cache hashes from one hash tag to another, key by key (Redis Cluster-safe).

In a Redis Cluster two hash tags may live on two nodes: no script, MULTI or COPY can span
them (COPY answers CROSSSLOT). So the controller reads each source hash with HSCAN and
writes its copy with HSET: the reads of a batch of keys in one pipeline, the writes in one
MULTI (every destination of one call shares one hash tag, hence one slot). A destination
is deleted first and gets its expiry in the same MULTI, so repeating a copy gives the same
keys, and an interrupted one leaves each batch whole or absent — except a hash too large
for one HSCAN reply, whose remaining parts follow on their own (after its first part and
its expiry were written). Memory is bounded by the batch: at most ``KEYS_PER_BATCH`` keys
of about ``HSCAN_COUNT`` fields each are held at once, whatever the cache's size.

Only HSCAN, HSET, HLEN, DEL and PEXPIREAT: commands the operator's Redis user has
(DUMP/RESTORE would need RESTORE, which Redis files under ``@dangerous``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from irods_ingest.store.connection import RedisClient, translated_errors

HSCAN_COUNT: Final = 1000
KEYS_PER_BATCH: Final = 100


@dataclass
class Copied:
    keys: int = 0
    entries: int = 0


def copy_hashes(
    client: RedisClient, pairs: Sequence[tuple[bytes | str, str]], *, expire_at_ms: int | None = None
) -> Copied:
    """Copy each (source, destination) hash; every destination must carry the same hash tag.
    A source that is gone (or empty) is skipped. Returns how many keys and entries were copied."""
    copied = Copied()
    for start in range(0, len(pairs), KEYS_PER_BATCH):
        batch = pairs[start : start + KEYS_PER_BATCH]
        with translated_errors():
            read = client.pipeline(transaction=False)
            for source, _destination in batch:
                read.hscan(source, 0, count=HSCAN_COUNT)
            replies = read.execute()
            write = client.pipeline(transaction=True)
            large: list[tuple[bytes | str, str, int]] = []
            for (source, destination), (cursor, fields) in zip(batch, replies, strict=True):
                if not fields:
                    continue
                write.delete(destination)
                write.hset(destination, mapping=fields)
                if expire_at_ms is not None:
                    write.pexpireat(destination, expire_at_ms)
                copied.keys += 1
                if cursor:
                    large.append((source, destination, int(cursor)))
                else:
                    copied.entries += len(fields)
            write.execute()
            for source, destination, cursor in large:
                while cursor:
                    cursor, more = client.hscan(source, cursor, count=HSCAN_COUNT)
                    if more:
                        client.hset(destination, mapping=cast(dict[Any, Any], more))
                copied.entries += int(client.hlen(destination))  # HSCAN may repeat a field; HLEN does not
    return copied
