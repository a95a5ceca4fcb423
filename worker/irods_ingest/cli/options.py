"""The command line's options: the parser, and a JobConfig from them."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irods_ingest import __version__
from irods_ingest.cli.extras import ExtraCommand
from irods_ingest.config import (
    DEFAULT_MAX_FAILURE_RECORDS,
    DeleteMode,
    FileType,
    JobConfig,
    Operation,
    SymlinkPolicy,
)
from irods_ingest.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    pass


def _opt(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """Add ``--some-option`` with the incumbent's ``--some_option`` as an alias."""
    names = [name]
    if "-" in name[2:]:
        names.append("--" + name[2:].replace("-", "_"))
    parser.add_argument(*names, **kwargs)


def _add_redis(parser: argparse.ArgumentParser) -> None:
    _opt(parser, "--redis-url", default=None, help="Redis URL (redis://[user:password@]host:port/db, rediss:// "
         "or, behind Sentinel, redis+sentinel://[user:password@]sentinel1:port,sentinel2:port/SERVICE/db); default "
         "$IRODS_INGEST_REDIS_URL or redis://127.0.0.1:6379/0. A password given here is visible to every user of "
         "this machine (ps): give it in $IRODS_INGEST_REDIS_URL or --redis-url-file instead")
    _opt(parser, "--redis-url-file", default=None, metavar="PATH",
         help="read the Redis URL from this file (its first line), e.g. a mounted Secret")
    _opt(parser, "--log-level", default=os.environ.get("IRODS_INGEST_LOG_LEVEL", "WARNING"), help="DEBUG, INFO, WARNING or ERROR")


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src_path", metavar="SOURCE", help="directory to ingest, or s3://bucket[/prefix]")
    parser.add_argument("target", metavar="TARGET_COLLECTION", help="absolute iRODS collection (created if missing)")
    _opt(parser, "--job-name", default=None, help="job name (default: a generated id)")
    _opt(parser, "--resource", default=None, help="root resource for new data (destRescName)")
    _opt(parser, "--operation", default=Operation.REGISTER_SYNC.value, choices=[o.value for o in Operation])
    _opt(parser, "--delete-mode", default=DeleteMode.DO_NOT_DELETE.value, choices=[d.value for d in DeleteMode])
    _opt(parser, "--event-handler", default=None, help="path of an event-handler module (the incumbent's API)")
    _opt(parser, "--files-per-task", type=int, default=50, help="files per sync task")
    _opt(parser, "--max-retries", type=int, default=3, help="retries of a transient failure")
    _opt(parser, "--retry-backoff", type=float, default=5.0, help="first retry delay in seconds (doubles, capped)")
    _opt(parser, "--task-timeout", type=int, default=3600, help="seconds a task may take")
    _opt(parser, "--max-failure-records", type=int, default=DEFAULT_MAX_FAILURE_RECORDS,
         help="failure records a run keeps in Redis (its first ones; the rest are counted)")
    _opt(parser, "--initial-ingest", action="store_true", help="skip existence checks (nothing is in iRODS yet)")
    _opt(parser, "--ignore-cache", action="store_true", help="sync every file, as if never synced")
    _opt(parser, "--symlinks", default=SymlinkPolicy.REGISTER.value, choices=[s.value for s in SymlinkPolicy])
    _opt(parser, "--verify-checksum", action="store_true", help="have iRODS verify checksums of what it stores")
    _opt(parser, "--exclude-file-type", action="append", default=[], help="comma-separated: " + ",".join(t.value for t in FileType))
    _opt(parser, "--exclude-file-name", nargs="+", action="extend", default=[], help="regexes matched against entry names")
    _opt(parser, "--exclude-directory-name", nargs="+", action="extend", default=[], help="regexes matched against directory paths relative to the source")
    _opt(parser, "--include-file-name", nargs="+", action="extend", default=[], help="only files whose name matches")
    # S3 sources (the incumbent's spellings as aliases). Credentials come from
    # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or --s3-keypair for the workers spawned here.
    parser.add_argument("--s3-endpoint", "--s3_endpoint_domain", "--s3_endpoint", dest="s3_endpoint", default=None,
                        help="S3 endpoint: https://host[:port] or host[:port] (default: AWS)")
    parser.add_argument("--s3-region", "--s3_region_name", "--s3_region", dest="s3_region", default=None, help="S3 region")
    parser.add_argument("--s3-insecure", "--s3_insecure_connection", "--s3_insecure", dest="s3_insecure", action="store_true",
                        help="plain http to the S3 endpoint")
    parser.add_argument("--s3-keypair", "--s3_keypair", dest="s3_keypair", default=None,
                        help="file with the access key id and the secret key on two lines (passed to spawned workers' environment only)")


def build_parser(extras: Mapping[str, ExtraCommand] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irods-ingest", description="Ingest files into iRODS: the engine of irods-ingest-operator, without Kubernetes.")
    parser.add_argument("--version", action="version", version=f"irods-ingest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    start = sub.add_parser("start", help="start a job (optionally wait for it)")
    _add_job_options(start)
    _add_redis(start)
    _opt(start, "--synchronous", action="store_true", help="wait until the run ends; exit 1 if files failed")
    _opt(start, "--progress", action="store_true", help="show a live progress bar (with --synchronous)")
    _opt(start, "--workers", type=int, default=0, help="start N local worker processes for this run (implies --synchronous)")
    _opt(start, "--restart", action="store_true", help="replace a run that is still active")

    plan = sub.add_parser("plan", help="report what a job would do, touching neither Redis nor iRODS")
    _add_job_options(plan)
    _opt(plan, "--log-level", default="WARNING")

    for name, text in (("stop", "stop a job's current run"), ("watch", "follow a job's run until it ends"), ("failures", "list a run's failed and skipped files")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_name", metavar="JOB")
        _add_redis(p)
        if name == "failures":
            p.add_argument("--format", choices=["table", "json"], default="table")

    retry = sub.add_parser("retry", help="redo only what failed in a job's last run, without rescanning")
    retry.add_argument("job_name", metavar="JOB")
    _add_redis(retry)
    _opt(retry, "--workers", type=int, default=0, help="start N local worker processes and wait")
    _opt(retry, "--progress", action="store_true", help="show a live progress bar (with --workers)")

    lst = sub.add_parser("list", help="list jobs with their current or last run")
    _add_redis(lst)
    lst.add_argument("--format", choices=["table", "json"], default="table")

    worker = sub.add_parser("worker", help="run a worker process for one or more jobs")
    worker.add_argument("--job", action="append", required=True, dest="jobs", help="job to serve (repeatable)")
    _opt(worker, "--concurrency", type=int, default=1)
    _opt(worker, "--exit-when-idle", action="store_true", help="exit when the served jobs have no active run")
    _opt(worker, "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    _add_redis(worker)

    for name, command in (extras or {}).items():  # they parse their own arguments (see main)
        extra = sub.add_parser(name, help=command.help, add_help=False)
        extra.add_argument("args", nargs=argparse.REMAINDER)
    return parser


S3_SCHEME = "s3://"


def s3_source_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``s3`` setting for an ``s3://bucket/prefix`` source (None for a directory)."""
    if not args.src_path.startswith(S3_SCHEME):
        if args.s3_endpoint or args.s3_region or args.s3_insecure or args.s3_keypair:
            raise UsageError("--s3-* options need an s3://bucket[/prefix] source")
        return None
    bucket, _, prefix = args.src_path[len(S3_SCHEME) :].partition("/")
    return {"bucket": bucket, "prefix": prefix.strip("/"), "endpoint": args.s3_endpoint, "region": args.s3_region,
            "insecure": bool(args.s3_insecure)}


def read_keypair(path: str | None) -> dict[str, str]:
    """The incumbent's ``--s3_keypair`` file (access key id, then secret key) as worker environment."""
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
    except OSError as exc:
        raise UsageError(f"--s3-keypair: cannot read {path}: {exc.strerror}") from exc
    if len(lines) != 2:
        raise UsageError(f"--s3-keypair: {path} must hold two lines (access key id, secret key), not {len(lines)}")
    return {"AWS_ACCESS_KEY_ID": lines[0], "AWS_SECRET_ACCESS_KEY": lines[1]}


def config_from_args(args: argparse.Namespace) -> JobConfig:
    types: list[str] = []
    for item in args.exclude_file_type:
        types.extend(t.strip() for t in item.split(",") if t.strip())
    s3 = s3_source_from_args(args)
    return JobConfig.from_dict(
        {
            "job_name": args.job_name or f"job-{uuid.uuid4().hex[:12]}",
            "source_path": "" if s3 else os.path.abspath(args.src_path),
            "s3": s3,
            "target_collection": args.target,
            "resource": args.resource,
            "operation": args.operation,
            "delete_mode": args.delete_mode,
            "exclude_types": types,
            "exclude_names": args.exclude_file_name,
            "exclude_directories": args.exclude_directory_name,
            "include_names": args.include_file_name,
            "files_per_task": args.files_per_task,
            "max_retries": args.max_retries,
            "retry_backoff_seconds": args.retry_backoff,
            "task_timeout_seconds": args.task_timeout,
            "max_failure_records": args.max_failure_records,
            "initial_ingest": args.initial_ingest,
            "ignore_cache": args.ignore_cache,
            "symlinks": args.symlinks,
            "verify_checksum": args.verify_checksum,
        }
    )


def _read_handler(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"--event-handler: cannot read {path}: {exc.strerror}") from exc


def check_local_source(config: JobConfig) -> None:
    """Refuse a source directory that is missing here, before anything is written.

    Only where this machine scans it (``plan``, ``start --workers``): workers elsewhere may
    see a path this machine does not; their run then fails naming the source.
    """
    if config.s3 is not None or os.path.isdir(config.source_path):
        return
    what = "is not a directory" if os.path.exists(config.source_path) else "does not exist"
    raise ConfigError([ConfigProblem("source_path", f"{config.source_path} {what}", "give an existing directory to ingest")])


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2."""




# ---------------------------------------------------------------------------- commands
def resolve_redis_url(args: argparse.Namespace) -> None:
    """--redis-url-file into args.redis_url; a warning for a password on the command line."""
    from urllib.parse import urlsplit

    path = getattr(args, "redis_url_file", None)
    if path:
        if getattr(args, "redis_url", None):
            raise UsageError("give --redis-url or --redis-url-file, not both")
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"--redis-url-file {path}: {exc.strerror}") from exc
        if not lines or not lines[0].strip():
            raise UsageError(f"--redis-url-file {path} is empty (put the URL on its first line)")
        args.redis_url = lines[0].strip()
    elif getattr(args, "redis_url", None) and urlsplit(args.redis_url).password:
        print("irods-ingest: warning: --redis-url carries a password, which every user of this machine can read in "
              "the process list; use $IRODS_INGEST_REDIS_URL or --redis-url-file", file=sys.stderr)
