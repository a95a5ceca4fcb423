"""S3 pieces without a server: config, task wire form, ETag verification, page classification, CLI parsing."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from irods_ingest.checksums import StreamVerifier, part_size_candidates
from irods_ingest.cli import build_parser, config_from_args, read_keypair
from irods_ingest.config import DeleteMode, JobConfig, Operation, S3Source, cache_generation, check, validate
from irods_ingest.errors import ConfigError, PermanentError, RetryableError
from irods_ingest.s3_io import ListPage, S3Object, TransferSettings
from irods_ingest.s3_io.bucket import ENV_PAGE_SIZE, ENV_PART_BYTES, ENV_PARTS_IN_FLIGHT
from irods_ingest.s3_scan import classify_page, list_prefix
from irods_ingest.s3_transfer import Part, copy_parts, plan_parts
from irods_ingest.scan import Filters
from irods_ingest.tasks import FileEntry, Task, TaskKind

S3 = S3Source(bucket="my-bucket", endpoint="https://s3.example.org", prefix="data/2024", region="eu-west-1")
BASE = JobConfig(job_name="j", source_path="", target_collection="/tempZone/home/rods/in", s3=S3)


# ---------------------------------------------------------------- config
def test_s3_config_round_trips_and_validates() -> None:
    assert validate(BASE) == []
    data = BASE.to_dict()
    assert data["s3"] == {"bucket": "my-bucket", "endpoint": "https://s3.example.org", "prefix": "data/2024",
                          "region": "eu-west-1", "insecure": False}
    assert JobConfig.from_dict(data) == BASE
    assert "s3" not in BASE.with_changes(s3=None, source_path="/d").to_dict()  # filesystem jobs unchanged on the wire
    assert BASE.source_root == "/my-bucket/data/2024"
    assert not any("secret" in key.lower() or "access" in key.lower() for key in data["s3"])


def test_s3_settings_change_the_cache_generation_but_filesystem_jobs_keep_theirs() -> None:
    assert cache_generation(BASE) != cache_generation(BASE.with_changes(s3=S3Source("my-bucket", prefix="other")))
    fs = JobConfig(job_name="j", source_path="/data", target_collection="/tempZone/home/rods/in")
    assert cache_generation(fs) == cache_generation(JobConfig.from_dict(fs.to_dict()))


@pytest.mark.parametrize("bucket", ["ab", "Upper", "-lead", "trail-", "a..b", "192.168.1.1", "under_score", "x" * 64])
def test_bad_bucket_names_are_refused(bucket: str) -> None:
    problems = validate(BASE.with_changes(s3=S3Source(bucket=bucket)))
    assert [p.field for p in problems] == ["s3.bucket"]


def test_exactly_one_source_and_delete_modes_follow_the_operation() -> None:
    both = validate(BASE.with_changes(source_path="/data"))
    assert [p.field for p in both] == ["source_path"]
    # An object removed from the bucket is deleted as a vanished file is: every delete mode
    # the operation allows is allowed for S3 too, and the incumbent's matrix still refuses the rest.
    for operation, mode in ((Operation.PUT_SYNC, DeleteMode.TRASH), (Operation.PUT_APPEND, DeleteMode.NO_TRASH),
                            (Operation.REGISTER_SYNC, DeleteMode.UNREGISTER)):
        assert validate(BASE.with_changes(operation=operation, delete_mode=mode)) == [], (operation, mode)
    wrong = validate(BASE.with_changes(operation=Operation.REGISTER_SYNC, delete_mode=DeleteMode.TRASH))
    assert [p.field for p in wrong] == ["delete_mode"] and "incompatible with operation RegisterSync" in wrong[0].message
    plain_http = validate(BASE.with_changes(s3=S3Source("my-bucket", endpoint="http://minio:9000")))
    assert [p.field for p in plain_http] == ["s3.endpoint"]
    assert validate(BASE.with_changes(s3=S3Source("my-bucket", endpoint="http://minio:9000", insecure=True))) == []
    with pytest.raises(ConfigError, match=r"s3\.secret: unknown setting"):
        JobConfig.from_dict({**BASE.to_dict(), "s3": {"bucket": "b", "secret": "x"}})


def test_prefix_forms_name_the_same_keys() -> None:
    for prefix in ("data/2024", "/data/2024/", "data/2024/"):
        source = S3Source("b", prefix=prefix)
        assert source.key("x/y") == "data/2024/x/y"
        assert source.physical_path("x/y") == "/b/data/2024/x/y"
    assert S3Source("b").key("k") == "k" and S3Source("b").physical_path() == "/b"


# ---------------------------------------------------------------- wire form
def test_task_token_and_etag_travel_only_when_set() -> None:
    plain = Task(TaskKind.SCAN, "r1", directory="a")
    assert "tok" not in plain.encode()
    scan = Task(TaskKind.SCAN, "r1", directory="a b/ü+%", token="opaque/token==")
    assert Task.decode(scan.encode()) == scan
    entry = FileEntry("x", 12, 5, "regular", etag="0123abc-3")
    files = Task(TaskKind.FILES, "r1", entries=(entry, FileEntry("y", 1, 2)))
    decoded = Task.decode(files.encode())
    assert decoded.entries == files.entries
    assert entry.cache_value == "etag:0123abc-3:12"
    assert FileEntry("y", 1, 2).cache_value == "2:1"


# ---------------------------------------------------------------- verification
def _multipart_etag(data: bytes, part: int) -> str:
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _verify(data: bytes, etag: str, chunk: int = 1_000_003) -> str | None:
    verifier = StreamVerifier(etag, len(data))
    for start in range(0, len(data), chunk):
        verifier.update(data[start : start + chunk])
    return verifier.etag_problem()


def test_single_part_etag_verifies_and_a_wrong_one_fails() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert _verify(data, hashlib.md5(data).hexdigest()) is None
    wrong = hashlib.md5(data + b"x").hexdigest()
    problem = _verify(data, wrong)
    assert problem is not None and "checksum mismatch" in problem and wrong in problem


@pytest.mark.parametrize("part_mib", [5, 8, 16])
def test_multipart_etag_with_a_common_part_size_verifies(part_mib: int) -> None:
    part = part_mib * 1024 * 1024
    data = os.urandom(2 * part + 1234)
    assert _verify(data, _multipart_etag(data, part)) is None
    assert "checksum mismatch" in (_verify(data[:-1] + b"\0" if data[-1] else data[:-1] + b"\1", _multipart_etag(data, part)) or "")


def test_multipart_etag_with_an_unknown_part_size_fails_clearly() -> None:
    data = os.urandom(7 * 1024 * 1024)
    etag = _multipart_etag(data, 3 * 1024 * 1024 + 5)  # 3 parts, none of the known sizes fits
    assert part_size_candidates(len(data), 3) == []
    problem = _verify(data, etag)
    assert problem is not None and "cannot verify multipart ETag" in problem
    assert "cannot verify multipart ETag" in (_verify(b"x" * 10, "0" * 32 + "-3") or "")


def test_short_read_and_irods_checksum_mismatch_are_named() -> None:
    data = b"abc" * 1000
    verifier = StreamVerifier(hashlib.md5(data).hexdigest(), len(data) + 1)
    verifier.update(data)
    assert "changed during the transfer" in (verifier.etag_problem() or "")
    good = StreamVerifier(hashlib.md5(data).hexdigest(), len(data))
    good.update(data)
    assert good.irods_problem("sha2:AAAA") is not None
    import base64

    assert good.irods_problem("sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()) is None


# ---------------------------------------------------------------- page classification
def test_page_classification_prefixes_markers_odd_keys_and_exclusions() -> None:
    source = S3Source("b", prefix="data")
    assert list_prefix(source, "") == "data/" and list_prefix(source, "a b") == "data/a b/"
    page = ListPage(
        objects=[
            S3Object("data/sub/", 0, "d41d8cd98f00b204e9800998ecf8427e", 0),  # the folder marker itself
            S3Object("data/sub/with space+plus%.txt", 3, "e1", 1_000_000_000),
            S3Object("data/sub/ünï.tmp", 4, "e2", 2),
            S3Object("data/sub/..", 1, "e3", 3),
        ],
        common_prefixes=["data/sub/deeper/", "data/sub/skipme/", "data/sub//"],
        next_token="",
    )
    config = JobConfig(job_name="j", source_path="", target_collection="/z/c", s3=source,
                       exclude_names=(r".*\.tmp",), exclude_directories=("sub/skipme",))
    result = classify_page(page, source, "sub", Filters(config))
    assert result.subdirectories == ["sub/deeper"]
    assert [e.name for e in result.candidates] == ["with space+plus%.txt"]
    assert result.candidates[0].etag == "e1" and result.candidates[0].mtime_ns == 1_000_000_000
    assert result.excluded == 1
    assert len(result.skipped) == 2


# ---------------------------------------------------------------- CLI
def test_cli_s3_source_with_incumbent_spellings(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["start", "s3://my-bucket/data/2024/", "/tempZone/home/rods/in", "--s3_endpoint_domain",
                              "minio:9000", "--s3_region_name", "eu-west-1", "--s3_insecure_connection"])
    config = check(config_from_args(args))
    assert config.s3 == S3Source("my-bucket", endpoint="minio:9000", prefix="data/2024", region="eu-west-1", insecure=True)
    assert config.source_path == "" and config.s3.endpoint_url() == "http://minio:9000"
    modern = parser.parse_args(["start", "s3://my-bucket", "/tempZone/home/rods/in", "--s3-endpoint", "https://s3.x", "--s3-region", "r"])
    assert config_from_args(modern).s3 == S3Source("my-bucket", endpoint="https://s3.x", region="r")
    keypair = tmp_path / "keys"
    keypair.write_text("AKIDEXAMPLE\nsecret/key+value\n")
    assert read_keypair(str(keypair)) == {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret/key+value"}


def test_cli_refuses_s3_options_for_a_directory_and_bad_keypairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from irods_ingest.cli import main

    assert main(["plan", str(tmp_path), "/tempZone/home/rods/in", "--s3-region", "r"]) == 2
    assert "s3://" in capsys.readouterr().err
    bad = tmp_path / "keys"
    bad.write_text("only-one-line\n")
    assert main(["start", "s3://my-bucket", "/tempZone/home/rods/in", "--s3_keypair", str(bad), "--workers", "1",
                 "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert "two lines" in err and "only-one-line" not in err


# ---------------------------------------------------------------- operator mapping
def test_operator_maps_spec_source_s3_to_the_engine_config_without_credentials() -> None:
    from irods_ingest_operator.jobconfig import to_job_config
    from irods_ingest_operator.spec import parse_spec

    spec = parse_spec({
        "source": {"s3": {"bucket": "raw-data", "prefix": "in/2024", "endpoint": "minio.example:9000", "region": "eu-1",
                          "insecure": True, "credentialsSecret": {"name": "s3-creds"}}},
        "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods-conn"}},
        "operation": "PutSync",
    })
    config = check(to_job_config(spec, namespace="ns", name="job"))
    assert config.source_path == ""
    assert config.s3 == S3Source("raw-data", endpoint="minio.example:9000", prefix="in/2024", region="eu-1", insecure=True)
    assert "s3-creds" not in str(config.to_dict())


def test_retry_of_failed_s3_objects_relists_their_prefixes() -> None:
    from irods_ingest.actions import retry_tasks

    failures = [
        {"kind": "files", "path": "/my-bucket/data/2024/a/b.txt", "reason": "x"},
        {"kind": "files", "path": "/my-bucket/data/2024/top.txt", "reason": "x"},
        {"kind": "files", "path": "/my-bucket/data/2024/a/skipped", "reason": "x", "outcome": "skipped"},
    ]
    tasks, _ = retry_tasks(BASE, failures, "r2")
    assert sorted((t.kind, t.directory) for t in tasks) == [(TaskKind.SCAN, ""), (TaskKind.SCAN, "a")]


def test_boto_errors_are_translated_into_the_engine_taxonomy() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from irods_ingest.errors import PermanentError, RetryableError, SourceVanished
    from irods_ingest.s3_io.bucket import s3_errors

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    def translated(exc: Exception) -> Exception:
        try:
            with s3_errors("reading", "/b/k"):
                raise exc
        except Exception as caught:
            return caught
        raise AssertionError("nothing raised")

    for retryable in (client_error("SlowDown", 503), client_error("InternalError", 500), client_error("Weird", 502),
                      EndpointConnectionError(endpoint_url="http://127.0.0.1:1")):
        assert type(translated(retryable)) is RetryableError, retryable
    for credential in (client_error("InvalidAccessKeyId", 403), client_error("SignatureDoesNotMatch", 403), NoCredentialsError()):
        error = translated(credential)
        assert type(error) is PermanentError and "AWS_SECRET_ACCESS_KEY" in str(error), credential
    assert type(translated(client_error("NoSuchKey", 404))) is SourceVanished
    assert "bucket name" in str(translated(client_error("NoSuchBucket", 404)))


# ---------------------------------------------------------------- transfer settings and parallel parts
def test_transfer_settings_come_from_the_worker_environment_and_bad_values_are_named() -> None:
    assert TransferSettings.from_environment({}) == TransferSettings()
    tuned = TransferSettings.from_environment({ENV_PART_BYTES: "1048576", ENV_PARTS_IN_FLIGHT: "2", ENV_PAGE_SIZE: "5"})
    assert (tuned.part_bytes, tuned.parts_in_flight, tuned.page_size) == (1048576, 2, 5)
    for variable, value in ((ENV_PARTS_IN_FLIGHT, "0"), (ENV_PART_BYTES, "8MiB"), (ENV_PAGE_SIZE, "1001")):
        with pytest.raises(PermanentError, match=variable):
            TransferSettings.from_environment({variable: value})


def test_parts_cover_the_range_exactly() -> None:
    parts = plan_parts(5, 5 + 10 * 3 + 4, 10)
    assert [(p.offset, p.length) for p in parts] == [(5, 10), (15, 10), (25, 10), (35, 4)]
    assert plan_parts(7, 7, 10) == []


class _RecordingWriter:
    """Writes parts into a bytearray at their offsets (as ParallelWrite does into a replica)."""

    def __init__(self, size: int) -> None:
        self.target = bytearray(size)
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0

    def write_at(self, offset: int, chunks: Iterator[bytes]) -> int:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            written = 0
            for chunk in chunks:
                self.target[offset + written : offset + written + len(chunk)] = chunk
                written += len(chunk)
            return written
        finally:
            with self.lock:
                self.active -= 1


def test_parallel_parts_are_hashed_in_order_with_bounded_buffering() -> None:
    size, part_bytes, window = 1000, 64, 3
    data = bytes(random.Random(1).randbytes(size))
    parts = plan_parts(0, size, part_bytes)
    all_started = threading.Barrier(3, timeout=10)  # met inside write_at: the window is full
    later_done = threading.Semaphore(0)
    held = {"now": 0, "most": 0}
    lock = threading.Lock()

    def fetch(part: Part) -> Iterator[bytes]:
        if part.index < 3:
            all_started.wait()  # all three parts of the window are in write_at at once
        if part.index == 0:
            # The first part is slow: parts 1 and 2 finish first and must wait, buffered, for
            # it to be hashed, and part 3 may not start before that.
            assert later_done.acquire(timeout=10) and later_done.acquire(timeout=10)
        for start in range(part.offset, part.end, 16):
            chunk = data[start : min(start + 16, part.end)]
            with lock:
                held["now"] += len(chunk)
                held["most"] = max(held["most"], held["now"])
            yield chunk
        if part.index in (1, 2):
            later_done.release()

    class Hasher:
        def __init__(self) -> None:
            self.md5 = hashlib.md5()

        def update(self, chunk: bytes) -> None:
            with lock:
                held["now"] -= len(chunk)
            self.md5.update(chunk)

    writer = _RecordingWriter(size)
    hasher = Hasher()
    assert copy_parts(parts, fetch, writer, parts_in_flight=window, hasher=hasher) == size
    assert bytes(writer.target) == data
    assert hasher.md5.hexdigest() == hashlib.md5(data).hexdigest()  # in order, despite finishing out of order
    assert held["most"] <= window * part_bytes
    assert writer.most_active == window  # the window was used, not a sequential copy


def test_a_failing_part_stops_the_others_and_its_error_is_raised() -> None:
    parts = plan_parts(0, 64 * 20, 64)
    started: list[int] = []

    def fetch(part: Part) -> Iterator[bytes]:
        started.append(part.index)
        if part.index == 2:
            raise RetryableError("connection to S3 lost")
        yield b"x" * part.length

    with pytest.raises(RetryableError, match="connection to S3 lost"):
        copy_parts(parts, fetch, _RecordingWriter(64 * 20), parts_in_flight=2)
    assert max(started) < 6  # nothing much beyond the window was started after the failure

    def short(part: Part) -> Iterator[bytes]:
        yield b"x" * (part.length - 1)

    with pytest.raises(RetryableError, match="instead of 64"):
        copy_parts(parts[:1], short, _RecordingWriter(64), parts_in_flight=2, where="/b/k")


def test_page_names_seen_include_excluded_and_skipped_entries() -> None:
    page = ListPage(
        objects=[S3Object(f"data/2024/{n}", 1, "e", 0) for n in ("keep.txt", "x.tmp", "..", "")],
        common_prefixes=["data/2024/sub/", "data/2024/skipme/"],
        next_token="",
    )
    config = BASE.with_changes(exclude_names=(r".*\.tmp",), exclude_directories=("skipme",))
    result = classify_page(page, S3, "", Filters(config))
    assert result.names_seen == {"keep.txt", "x.tmp", "..", "sub", "skipme"}  # never the folder marker ""
