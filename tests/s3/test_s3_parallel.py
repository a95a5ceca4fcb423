"""Large S3 objects as parallel ranged GETs written at their offsets into one iRODS replica,
against moto's server, a real redis-server and the iRODS test server (or a real iRODS)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from irods_ingest.config import Operation
from irods_ingest.s3_io.bucket import RESUMES_PER_READ
from irods_ingest_testkit.irods_server import IrodsTestServer
from testsupport.s3_fixtures import S3Endpoint
from testsupport.s3_ingest import S3Ingest, irods_sha256, overwriting_handler, tune_transfers
from testsupport.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.irods]

MIB = 1024 * 1024
REPLICA_CLOSE_APN = 20004  # the joined handles' close (no finalize)
GET_FILE_DESCRIPTOR_INFO_APN = 20000  # the replica token of the first handle


def data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def counts(server: IrodsTestServer | None) -> dict[int, int]:
    return server.api_counts() if server is not None else {}


def good_replicas(s3: S3Ingest, relative: str) -> list[Any]:
    obj = s3.ingest.session.data_objects.get(s3.ingest.logical(relative))
    return [r for r in obj.replicas if str(r.status) == "1"]


def test_object_above_the_threshold_goes_as_parallel_parts_into_one_replica(
    s3_ingest: S3Ingest, irods_server: IrodsTestServer | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    tune_transfers(monkeypatch, threshold=4 * MIB, part=MIB, in_flight=3)
    big = data(9 * MIB + 12345, 1)  # 10 parts, the last one short
    small = data(3 * MIB, 2)  # below the threshold: one sequential stream
    s3_ingest.put("big.bin", big)
    s3_ingest.put("small.bin", small)
    before = counts(irods_server)
    status = s3_ingest.run(operation=Operation.PUT, verify_checksum=True, workers=1)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert status.counters["files_synced"] == 2
    assert irods_sha256(s3_ingest, "big.bin") == (len(big), hashlib.sha256(big).hexdigest())
    assert irods_sha256(s3_ingest, "small.bin") == (len(small), hashlib.sha256(small).hexdigest())
    [replica] = good_replicas(s3_ingest, "big.bin")  # one replica, finalized good, with the full size
    assert replica.size == len(big)
    if irods_server is not None:
        after = counts(irods_server)
        joined = after.get(REPLICA_CLOSE_APN, 0) - before.get(REPLICA_CLOSE_APN, 0)
        # Parts overlapped: extra handles joined the replica by token (at most in_flight - 1);
        # the small object never asked for a token.
        assert 1 <= joined <= 2, joined
        assert after.get(GET_FILE_DESCRIPTOR_INFO_APN, 0) - before.get(GET_FILE_DESCRIPTOR_INFO_APN, 0) == 1


def test_multipart_etag_verifies_whatever_our_part_size(s3_ingest: S3Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    # Uploaded in 5 MiB parts (MinIO's mc, rclone), fetched in 3 MiB parts: verification hashes
    # in order, so the composite ETag is judged on the uploader's boundaries.
    parts = [data(5 * MIB, 10 + i) for i in range(3)] + [data(MIB + 7, 20)]
    etag = s3_ingest.put_multipart("multi.bin", parts)
    assert etag.endswith("-4")
    tune_transfers(monkeypatch, threshold=MIB, part=3 * MIB, in_flight=4)
    status = s3_ingest.run(operation=Operation.PUT, verify_checksum=True)
    assert status.state == "done", s3_ingest.ingest.failures()
    whole = b"".join(parts)
    assert irods_sha256(s3_ingest, "multi.bin") == (len(whole), hashlib.sha256(whole).hexdigest())


def test_put_sync_rewrite_truncates_and_put_append_sends_only_the_growth_in_parts(
    s3_ingest: S3Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    tune_transfers(monkeypatch, threshold=2 * MIB, part=MIB, in_flight=3)
    s3_ingest.put("sync.bin", data(8 * MIB, 30))
    s3_ingest.put("log.bin", data(MIB, 31))
    assert s3_ingest.run(operation=Operation.PUT_SYNC, verify_checksum=True).state == "done"
    assert s3_ingest.run(operation=Operation.PUT_APPEND, verify_checksum=True).state == "done"

    shorter = data(5 * MIB + 3, 32)  # rewritten smaller: the old tail must not survive
    s3_ingest.put("sync.bin", shorter)
    status = s3_ingest.run(operation=Operation.PUT_SYNC, verify_checksum=True)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert irods_sha256(s3_ingest, "sync.bin") == (len(shorter), hashlib.sha256(shorter).hexdigest())

    grown = data(MIB, 31) + data(6 * MIB, 33)  # 6 MiB of growth: above the threshold, in parts
    s3_ingest.put("log.bin", grown)
    status = s3_ingest.run(operation=Operation.PUT_APPEND, verify_checksum=True)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert status.counters["files_synced"] == 1  # log.bin; sync.bin unchanged
    assert irods_sha256(s3_ingest, "log.bin") == (len(grown), hashlib.sha256(grown).hexdigest())


# Two cuts after 1 MiB: each broken part resumes with a ranged GET inside its own read. Sixteen
# cuts after 64 KiB: every GET breaks until they run out, so some part exhausts its resumes
# (at most 3 parts x RESUMES_PER_READ cuts are absorbed) and the whole file is retried.
@pytest.mark.parametrize(("cuts", "cut_after", "retried"), [(2, MIB, False), (16, 64 * 1024, True)],
                         ids=["parts-resumed", "file-retried"])
def test_broken_part_downloads_are_resumed_or_the_file_retried(
    s3_ingest: S3Ingest, s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch, cuts: int, cut_after: int, retried: bool
) -> None:
    assert 3 * RESUMES_PER_READ < 16
    tune_transfers(monkeypatch, threshold=2 * MIB, part=2 * MIB, in_flight=3)
    payload = data(10 * MIB, 40)
    s3_ingest.put("cut.bin", payload)
    proxy = TcpProxy(("127.0.0.1", int(s3_server.url.rsplit(":", 1)[1])), cut_after=cut_after, cuts=cuts)
    try:
        s3_ingest.endpoint = S3Endpoint(proxy.url)
        status = s3_ingest.run(operation=Operation.PUT, verify_checksum=True, retry_backoff_seconds=0.1, max_retries=5)
    finally:
        proxy.close()
    assert status.state == "done", s3_ingest.ingest.failures()
    assert proxy.cuts == cuts
    # root SCAN, "data/" has one page, one FILES task; a retried FILES task is one more
    assert status.counters["tasks_done"] == (3 if retried else 2), status
    assert irods_sha256(s3_ingest, "cut.bin") == (len(payload), hashlib.sha256(payload).hexdigest())
    [replica] = good_replicas(s3_ingest, "cut.bin")
    assert replica.size == len(payload)


def test_object_rewritten_after_listing_fails_clearly_and_leaves_no_copy(
    s3_ingest: S3Ingest, s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    tune_transfers(monkeypatch, threshold=MIB, part=MIB, in_flight=2)
    s3_ingest.put("victim.bin", data(4 * MIB, 50))
    # The hook runs after the listing, just before the copy: a concurrent writer replaces the
    # object. Every part is pinned to the listed ETag, so no mix of versions can be written.
    handler = overwriting_handler(s3_ingest, s3_server, "victim.bin", f"b'x' * {4 * MIB}")
    status = s3_ingest.run(handler=handler, operation=Operation.PUT)  # even without verifyChecksum
    assert status.state == "failed"
    [failure] = s3_ingest.ingest.failures()
    assert failure["path"] == f"/{s3_ingest.bucket}/data/victim.bin"
    assert "changed after it was listed" in failure["reason"]
    assert failure["attempts"] == 1  # retrying with the old listing cannot help
    assert s3_ingest.ingest.objects() == {}  # the half-written copy was removed
