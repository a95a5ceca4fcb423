"""Acceptance: whole S3-source jobs against moto's standalone S3 server (real HTTP on
loopback), a real redis-server and the iRODS test server."""

from __future__ import annotations

import hashlib
import random
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from irods_ingest.config import Operation
from irods_ingest.s3_io import CHUNK_BYTES, TransferSettings
from irods_ingest.s3_io.bucket import RESUMES_PER_READ
from irods_ingest_testkit.irods_server import IrodsTestServer
from testsupport.s3_fixtures import MotoServer, S3Endpoint
from testsupport.s3_ingest import S3Ingest, irods_sha256, overwriting_handler
from testsupport.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.irods]

MIB = 1024 * 1024
REPLICA_CLOSE_APN = 20004  # an extra handle of a parallel transfer closing (no finalize)
ODD_KEYS = {
    "top.txt": b"top\n",
    "dir/b.txt": b"b" * 100,
    "dir/sub/c.txt": b"c" * 1000,
    "dir/sub/deeper/d.bin": bytes(range(256)) * 10,
    "odd/with space.txt": b"space",
    "odd/ünïcödé ☃.txt": "unicode ☃".encode(),
    "odd/plus+sign.txt": b"plus",
    "odd/percent%20literal.txt": b"percent",
    "odd/#hash&amp;=?.txt": b"punctuation",
}


def assert_counts(status: Any, **expected: int) -> None:
    actual = {k: status.counters[k] for k in expected}
    assert actual == expected, (status, actual)


# ---------------------------------------------------------------- tree, odd keys, change detection
def test_put_tree_with_nested_prefixes_and_odd_keys_then_nothing_changes(s3_ingest: S3Ingest) -> None:
    for rel, data in ODD_KEYS.items():
        s3_ingest.put(rel, data)
    s3_ingest.put("dir/", b"")  # a folder marker: skipped, not an object
    s3_ingest.client.put_object(Bucket=s3_ingest.bucket, Key="outside/prefix.txt", Body=b"not ours")
    status = s3_ingest.run(operation=Operation.PUT_SYNC)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert_counts(status, files_discovered=len(ODD_KEYS), files_synced=len(ODD_KEYS), files_failed=0,
                  bytes_synced=sum(len(d) for d in ODD_KEYS.values()))
    objects = s3_ingest.ingest.objects()
    assert set(objects) == set(ODD_KEYS)
    for rel, data in ODD_KEYS.items():
        assert s3_ingest.ingest.read(rel) == data, rel

    again = s3_ingest.run(operation=Operation.PUT_SYNC)
    assert_counts(again, files_unchanged=len(ODD_KEYS), files_synced=0)

    s3_ingest.put("dir/b.txt", b"B" * 100)  # same size, new ETag: found by the ETag
    changed = s3_ingest.run(operation=Operation.PUT_SYNC)
    assert_counts(changed, files_synced=1, files_unchanged=len(ODD_KEYS) - 1)
    assert s3_ingest.ingest.read("dir/b.txt") == b"B" * 100


def test_exclusions_match_keys_relative_to_the_prefix(s3_ingest: S3Ingest) -> None:
    for rel in ("keep.txt", "x.tmp", "skip/y.txt", "sub/z.tmp", "sub/ok.txt"):
        s3_ingest.put(rel, rel.encode())
    status = s3_ingest.run(operation=Operation.PUT, exclude_names=(r".*\.tmp",), exclude_directories=("skip",))
    assert status.state == "done", s3_ingest.ingest.failures()
    assert set(s3_ingest.ingest.objects()) == {"keep.txt", "sub/ok.txt"}
    assert_counts(status, files_excluded=2, files_synced=2)


def test_many_page_listing_is_split_into_scan_tasks(s3_ingest: S3Ingest) -> None:
    count = 1100
    for i in range(count):
        s3_ingest.put(f"many/k{i:05d}", b"")
    status = s3_ingest.run(operation=Operation.NO_OP, files_per_task=10000)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert_counts(status, files_discovered=count, files_synced=count, files_failed=0)
    # root "data/" (one prefix) + "many/" page 1 + its continuation page 2 = 3 SCAN tasks,
    # and one FILES task per page = 2.
    assert_counts(status, tasks_done=5)


def test_register_sync_registers_bucket_key_paths_from_the_listing(s3_ingest: S3Ingest) -> None:
    s3_ingest.put("a.txt", b"hello")
    s3_ingest.put("d/b c.txt", b"world!!")
    status = s3_ingest.run(operation=Operation.REGISTER_SYNC)
    assert status.state == "done", s3_ingest.ingest.failures()
    objects = s3_ingest.ingest.objects()
    for rel, size in (("a.txt", 5), ("d/b c.txt", 7)):
        replica = objects[rel].replicas[0]
        assert replica.path == f"/{s3_ingest.bucket}/data/{rel}"
        assert objects[rel].size == size
        head = s3_ingest.client.head_object(Bucket=s3_ingest.bucket, Key=f"data/{rel}")
        assert int(objects[rel].modify_time.timestamp()) == int(head["LastModified"].timestamp())
    assert_counts(s3_ingest.run(operation=Operation.REGISTER_SYNC), files_unchanged=2, files_synced=0)


def test_put_append_streams_only_the_new_bytes_and_verifies(s3_ingest: S3Ingest) -> None:
    s3_ingest.put("log.txt", b"line 1\n")
    assert s3_ingest.run(operation=Operation.PUT_APPEND, verify_checksum=True).state == "done"
    s3_ingest.put("log.txt", b"line 1\nline 2\nline 3\n")
    status = s3_ingest.run(operation=Operation.PUT_APPEND, verify_checksum=True)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert_counts(status, files_synced=1)
    assert s3_ingest.ingest.read("log.txt") == b"line 1\nline 2\nline 3\n"


# ---------------------------------------------------------------- large objects
def test_object_larger_than_64_mib_goes_as_parallel_parts_and_verifies_its_multipart_etag(
    s3_ingest: S3Ingest, irods_server: IrodsTestServer | None
) -> None:
    parts, part_size = 9, 8 * MIB  # 72 MiB, uploaded the way boto3/aws-cli split it
    key = "big/large.bin"
    upload = s3_ingest.client.create_multipart_upload(Bucket=s3_ingest.bucket, Key=f"data/{key}")
    expected = hashlib.sha256()
    done_parts = []
    for number in range(1, parts + 1):
        data = random.Random(number).randbytes(part_size)  # one part in memory at a time
        expected.update(data)
        reply = s3_ingest.client.upload_part(Bucket=s3_ingest.bucket, Key=f"data/{key}", PartNumber=number,
                                             UploadId=upload["UploadId"], Body=data)
        done_parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        del data
    s3_ingest.client.complete_multipart_upload(Bucket=s3_ingest.bucket, Key=f"data/{key}", UploadId=upload["UploadId"],
                                               MultipartUpload={"Parts": done_parts})
    etag = s3_ingest.client.head_object(Bucket=s3_ingest.bucket, Key=f"data/{key}")["ETag"].strip('"')
    assert etag.endswith(f"-{parts}")

    joined_before = irods_server.api_counts().get(REPLICA_CLOSE_APN, 0) if irods_server else 0
    status = s3_ingest.run(operation=Operation.PUT, verify_checksum=True)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert_counts(status, files_synced=1, bytes_synced=parts * part_size)
    assert irods_sha256(s3_ingest, key) == (parts * part_size, expected.hexdigest())
    if irods_server is not None:  # above the default 32 MiB threshold: 8 MiB parts, 4 in flight
        joined = irods_server.api_counts().get(REPLICA_CLOSE_APN, 0) - joined_before
        assert 1 <= joined <= TransferSettings().parts_in_flight - 1, joined


# ---------------------------------------------------------------- integrity
def test_verify_checksum_passes_for_intact_objects(s3_ingest: S3Ingest) -> None:
    for i in range(5):
        s3_ingest.put(f"v{i}.bin", random.Random(i).randbytes(1000 * (i + 1)))
    status = s3_ingest.run(operation=Operation.PUT_SYNC, verify_checksum=True)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert_counts(status, files_synced=5, files_failed=0)


def test_object_rewritten_between_listing_and_sync_fails_verification(s3_ingest: S3Ingest, s3_server: S3Endpoint,
                                                                      tmp_path: Any) -> None:
    s3_ingest.put("victim.txt", b"original bytes")
    s3_ingest.put("fine.txt", b"left alone")
    # A handler hook runs after the listing and just before the copy: it rewrites the object
    # in the bucket (same size, other bytes), as a concurrent writer would.
    handler = overwriting_handler(s3_ingest, s3_server, "victim.txt", "b'CHANGED bytes!'")
    status = s3_ingest.run(handler=handler, operation=Operation.PUT, verify_checksum=True)
    assert status.state == "failed"
    assert_counts(status, files_failed=1, files_synced=1)
    [failure] = s3_ingest.ingest.failures()
    assert failure["path"] == f"/{s3_ingest.bucket}/data/victim.txt"
    assert "checksum mismatch" in failure["reason"] and "ETag" in failure["reason"]
    assert set(s3_ingest.ingest.objects()) == {"fine.txt"}  # the unverified copy was removed


# ---------------------------------------------------------------- credentials
@pytest.fixture
def authenticating_s3() -> Iterator[tuple[S3Endpoint, str, str]]:
    """A private moto server that checks signatures: (endpoint, bucket, real access key id)."""
    import boto3

    server = MotoServer().start()
    try:
        iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="ingest")
        policy = iam.create_policy(PolicyName="all", PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
        iam.attach_user_policy(UserName="ingest", PolicyArn=policy["Policy"]["Arn"])
        key = iam.create_access_key(UserName="ingest")["AccessKey"]
        endpoint = S3Endpoint(server.url, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        endpoint.client().create_bucket(Bucket="secured")  # type: ignore[attr-defined]
        endpoint.client().put_object(Bucket="secured", Key="data/a.txt", Body=b"secret data")  # type: ignore[attr-defined]
        # From now on every request must be signed by a known key.
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/moto-api/reset-auth", data=b"0", method="POST",
                                                      headers={"Content-Type": "text/plain"}))
        yield endpoint, "secured", key["AccessKeyId"]
    finally:
        server.stop()


def test_wrong_secret_fails_the_run_with_a_reason_naming_the_credentials(
    s3_ingest: S3Ingest, authenticating_s3: tuple[S3Endpoint, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, bucket, access_key = authenticating_s3
    s3_ingest.endpoint, s3_ingest.bucket = endpoint, bucket
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    status = s3_ingest.run(operation=Operation.PUT, max_retries=3, retry_backoff_seconds=0.1)
    assert status.state == "failed"
    assert status.error and "AWS_SECRET_ACCESS_KEY" in status.error and "credentials" in status.error
    [failure] = s3_ingest.ingest.failures()
    assert failure["attempts"] == 1  # permanent: not retried
    assert "not-the-secret" not in str(failure) and "not-the-secret" not in status.error

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", endpoint.secret_key)
    fixed = s3_ingest.run(operation=Operation.PUT)
    assert fixed.state == "done", s3_ingest.ingest.failures()
    assert s3_ingest.ingest.read("a.txt") == b"secret data"


# ---------------------------------------------------------------- interrupted transfers
# One cut is resumed by a ranged GET within the same read; more cuts than one read resumes
# fail the file's attempt (RetryableError) and the FILES task is retried after its backoff.
@pytest.mark.parametrize("cuts", [1, RESUMES_PER_READ + 2], ids=["resumed-within-the-read", "retried-as-a-task"])
def test_interrupted_download_is_resumed_or_retried(s3_ingest: S3Ingest, s3_server: S3Endpoint, cuts: int) -> None:
    size = 6 * MIB
    data = random.Random(7).randbytes(size)
    s3_ingest.put("cut.bin", data)
    proxy = TcpProxy(("127.0.0.1", int(s3_server.url.rsplit(":", 1)[1])), cut_after=MIB, cuts=cuts)
    try:
        s3_ingest.endpoint = S3Endpoint(proxy.url)
        status = s3_ingest.run(operation=Operation.PUT, verify_checksum=True, retry_backoff_seconds=0.1)
    finally:
        proxy.close()
    assert status.state == "done", s3_ingest.ingest.failures()
    assert proxy.cuts == cuts
    assert_counts(status, files_synced=1, files_failed=0)
    assert irods_sha256(s3_ingest, "cut.bin") == (size, hashlib.sha256(data).hexdigest())
    assert CHUNK_BYTES >= MIB  # the cut always falls inside a chunk being read
