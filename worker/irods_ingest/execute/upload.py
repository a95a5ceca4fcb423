"""Writing a file's bytes into iRODS: put, append, and S3 objects streamed (in parallel parts
when large), with checksum verification; a local file is read only through the confined
open of :mod:`irods_ingest.confine`.

Each function is the action that :mod:`irods_ingest.execute.sync` runs inside the handler's
data-object hooks; none decides whether to write (that is the sync's decision).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from irods_ingest.checksums import StreamVerifier
from irods_ingest.config import SymlinkPolicy
from irods_ingest.confine import opened_inside
from irods_ingest.errors import PermanentError
from irods_ingest.execute.context import JobContext
from irods_ingest.execute.file_work import FileWork
from irods_ingest.irods_io.bulk import ParallelWrite, supports_parallel_write
from irods_ingest.s3_transfer import copy_parts, plan_parts


def upload(job: JobContext, work: FileWork, *, overwrite: bool) -> None:
    """The whole file as the data object (``overwrite`` False: refused if one is there)."""
    if work.key:
        _stream_from_s3(job, work, overwrite=overwrite)
    else:
        with _opened(job, work) as local:
            work.catalog.put(local, work.target, resource=work.resource, overwrite=overwrite, checksum=job.config.verify_checksum)


def append(job: JobContext, work: FileWork, offset: int) -> None:
    """The file's bytes beyond ``offset`` (the data object's size) appended to it."""
    if work.key:
        _stream_from_s3(job, work, overwrite=True, offset=offset)
    else:
        with _opened(job, work) as local:
            work.catalog.append(local, work.target, from_offset=offset, resource=work.resource)


@contextmanager
def _opened(job: JobContext, work: FileWork) -> Iterator[str]:
    """The path to upload ``work``'s bytes from: the file opened by us and checked to be a
    regular file inside the source root (``/proc/self/fd/N``, see :mod:`irods_ingest.confine`).
    Links are followed only where the scan confined them (symlinks: Register or Follow)."""
    follow = work.entry.kind == "link" or job.config.symlinks is SymlinkPolicy.FOLLOW
    with opened_inside(work.source, job.real_source_root, follow=follow) as local:
        yield local


def _stream_from_s3(job: JobContext, work: FileWork, *, overwrite: bool, offset: int | None = None) -> None:
    """Stream an S3 object (from ``offset``) into iRODS, one chunk in memory at a time.

    With verifyChecksum the bytes are hashed as they pass (the bytes already in iRODS
    first, for an append) and judged against the listed ETag and iRODS' own checksum;
    a mismatch fails the file (a copy this call created is removed again).
    """
    verifier = StreamVerifier(work.entry.etag, work.entry.size) if job.config.verify_checksum else None
    if verifier is not None and offset:
        for chunk in work.catalog.read_stream(work.target, length=offset):
            verifier.update(chunk)

    transfer = job.bucket.transfer
    if work.entry.size - (offset or 0) >= transfer.parallel_threshold and supports_parallel_write(work.catalog):
        _parts_from_s3(job, work, overwrite=overwrite, offset=offset, verifier=verifier)
    else:
        def chunks() -> Iterator[bytes]:
            for chunk in job.bucket.read(work.key, offset or 0, work.entry.size):
                if verifier is not None:
                    verifier.update(chunk)
                yield chunk

        work.catalog.write_stream(chunks(), work.target, resource=work.resource, overwrite=overwrite, offset=offset)
    if verifier is None:
        return
    problem = verifier.etag_problem() or verifier.irods_problem(work.catalog.checksum(work.target))
    if problem:
        if not overwrite:
            work.catalog.discard(work.target)  # else a later Put would keep the bad copy as done
        raise PermanentError(f"{work.source}: {problem}")


def _parts_from_s3(
    job: JobContext, work: FileWork, *, overwrite: bool, offset: int | None, verifier: StreamVerifier | None
) -> None:
    """A large object as ranged GETs in parallel, each written at its offset through its
    own iRODS handle on the same replica (memory: parts in flight x part size)."""
    transfer = job.bucket.transfer
    parts = plan_parts(offset or 0, work.entry.size, transfer.part_bytes)
    with ParallelWrite(
        work.catalog, work.target, size=work.entry.size, resource=work.resource, overwrite=overwrite,
        append=offset is not None, handles=min(transfer.parts_in_flight, len(parts)),
    ) as writer:
        copy_parts(
            parts,
            lambda part: job.bucket.read(work.key, part.offset, part.end, if_match=work.entry.etag),
            writer,
            parts_in_flight=transfer.parts_in_flight,
            hasher=verifier,
            where=work.source,
        )
