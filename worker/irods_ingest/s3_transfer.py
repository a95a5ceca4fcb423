"""Copying one large S3 object into iRODS as parallel parts, with bounded memory.

The byte range is cut into parts of ``part_bytes``; at most ``parts_in_flight`` of them
are fetched (ranged GETs pinned to the listed ETag) and written at their offsets into the
iRODS object (one iRODS handle per part in flight, see :class:`ParallelWrite`) at once.

Verification needs the bytes in order (MD5 is sequential, and a multipart ETag is judged
on whole-object part boundaries), so when a verifier is given each part keeps its chunks
until every earlier part has been hashed; a part is only started once the part
``parts_in_flight`` places before it has been hashed, so no more than
``parts_in_flight * part_bytes`` are ever held. Without a verifier nothing is kept beyond
the chunk being written.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from irods_ingest.errors import RetryableError

WAIT_SLICE_SECONDS: Final = 0.25  # the coordinating thread wakes this often (a file time limit can fire)


@dataclass(frozen=True)
class Part:
    index: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def plan_parts(start: int, end: int, part_bytes: int) -> list[Part]:
    """``start..end`` (end exclusive) in parts of ``part_bytes`` (the last one shorter)."""
    if part_bytes < 1:
        raise ValueError("part_bytes must be positive")
    return [Part(i, offset, min(part_bytes, end - offset)) for i, offset in enumerate(range(start, end, part_bytes))]


class PartWriter(Protocol):
    def write_at(self, offset: int, chunks: Iterator[bytes]) -> int: ...


class Hasher(Protocol):
    def update(self, data: bytes) -> None: ...


class _Aborted(Exception):
    """Another part failed: this one stops at its next chunk."""


def copy_parts(
    parts: list[Part],
    fetch: Callable[[Part], Iterator[bytes]],
    writer: PartWriter,
    *,
    parts_in_flight: int,
    hasher: Hasher | None = None,
    where: str = "",
) -> int:
    """Fetch and write every part, ``parts_in_flight`` at a time; feed ``hasher`` the bytes
    in order. Returns the bytes written. The first failure stops the other parts and is
    raised (a short part is a :class:`RetryableError`)."""
    stop = threading.Event()
    window = max(1, parts_in_flight)

    def run(part: Part) -> list[bytes]:
        kept: list[bytes] = []

        def chunks() -> Iterator[bytes]:
            for chunk in fetch(part):
                if stop.is_set():
                    raise _Aborted
                if hasher is not None:
                    kept.append(chunk)
                yield chunk

        written = writer.write_at(part.offset, chunks())
        if written != part.length:
            raise RetryableError(
                f"{where}: bytes {part.offset}..{part.end} gave {written} bytes instead of {part.length} "
                "(the object changed or the connection broke)"
            )
        return kept

    total = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=window, thread_name_prefix="s3-part")
    futures: dict[int, concurrent.futures.Future[list[bytes]]] = {}
    submitted = 0
    try:
        for part in parts:
            while submitted < len(parts) and submitted - part.index < window:
                futures[submitted] = pool.submit(run, parts[submitted])
                submitted += 1
            future = futures.pop(part.index)
            # Wait in slices: a blocking wait would defer a file time limit (an asynchronous
            # exception) until the part is done. A failed later part ends the wait early too.
            while not future.done():
                done, _ = concurrent.futures.wait(
                    [future, *futures.values()], timeout=WAIT_SLICE_SECONDS, return_when=concurrent.futures.FIRST_EXCEPTION
                )
                for other in done:
                    if other is not future and other.exception() is not None:
                        other.result()  # raises the failure of the later part
            kept = future.result()
            total += part.length
            if hasher is not None:
                for chunk in kept:
                    hasher.update(chunk)
                kept.clear()
    except BaseException:
        stop.set()
        raise
    finally:
        # Running parts stop at their next chunk; none may outlive this call, or it would
        # still write through a connection the caller is about to reuse or reset.
        pool.shutdown(wait=True, cancel_futures=True)
    return total
