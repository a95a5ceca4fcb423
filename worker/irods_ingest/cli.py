"""``irods-ingest``: run ingest jobs without Kubernetes (close to the incumbent's ``irods_sync``).

Options are spelled with hyphens; the incumbent's underscore spellings are accepted as
aliases so migrating scripts keep working. Bad arguments get one clear line and exit
code 2; a run that ends with failed files exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from irods_ingest import __version__
from irods_ingest.config import (
    DEFAULT_MAX_FAILURE_RECORDS,
    DeleteMode,
    FileType,
    JobConfig,
    Operation,
    SymlinkPolicy,
)
from irods_ingest.errors import ConfigError, ConfigProblem, IngestError
from irods_ingest.store.jobstore import RunStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _opt(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """Add ``--some-option`` with the incumbent's ``--some_option`` as an alias."""
    names = [name]
    if "-" in name[2:]:
        names.append("--" + name[2:].replace("-", "_"))
    parser.add_argument(*names, **kwargs)


def _add_redis(parser: argparse.ArgumentParser) -> None:
    _opt(parser, "--redis-url", default=None, help="Redis URL (redis://[user:password@]host:port/db or rediss://); default "
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


def build_parser() -> argparse.ArgumentParser:
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

    demo = sub.add_parser("demo", help="a whole ingest on embedded defaults (private Redis + iRODS test server)")
    demo.add_argument("path", nargs="?", default=None, help="directory to ingest (default: a generated sample tree)")
    _opt(demo, "--redis-url", default=None, help="use this Redis instead of starting a private one")
    _opt(demo, "--workers", type=int, default=2)
    _opt(demo, "--files", type=int, default=500, help="size of the generated sample tree")

    server = sub.add_parser("test-server", help="run the iRODS protocol test server", add_help=False)
    server.add_argument("args", nargs=argparse.REMAINDER)
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


# ---------------------------------------------------------------------------- output
def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def progress_line(status: RunStatus, started: float) -> str:
    c = status.counters
    done = c["files_synced"] + c["files_unchanged"] + c["files_failed"] + c["files_skipped"]
    total = max(c["files_discovered"] + c["files_skipped"], done)
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done / elapsed
    fraction = done / total if total else 0.0
    width = 24
    bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
    eta = (total - done) / rate if rate > 0 and status.active else 0
    return (
        f"[{bar}] {done}/{total} files {fraction:4.0%}  {human_bytes(c['bytes_synced'])}/{human_bytes(c['bytes_discovered'])}"
        f"  {rate:,.0f} files/s  ETA {eta:,.0f}s  failed {c['files_failed']}  queued {status.queued} in-flight {status.in_flight}"
    )


def summary(status: RunStatus) -> str:
    c = status.counters
    took = f" in {status.ended - status.started:.1f}s" if status.started and status.ended else ""
    return (
        f"job {status.job} run {status.run_id}: {status.state}{took} — discovered {c['files_discovered']}, "
        f"synced {c['files_synced']} ({human_bytes(c['bytes_synced'])}), unchanged {c['files_unchanged']}, "
        f"skipped {c['files_skipped']}, excluded {c['files_excluded']}, failed {c['files_failed']}, deleted {c['files_deleted']}"
        + (f" (and {c['collections_deleted']} collections)" if c.get("collections_deleted") else "")
        + (f"; {c['failures_dropped']} failures not recorded (max_failure_records)" if c.get("failures_dropped") else "")
        + (f"; error: {status.error}" if status.error else "")
    )


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


def _client(args: argparse.Namespace) -> Any:
    from irods_ingest.store.connection import connect

    return connect(args.redis_url)


def follow(client: Any, job: str, run_id: str | None, show_progress: bool) -> RunStatus:
    from irods_ingest.actions import watch

    started = time.monotonic()
    last: RunStatus | None = None
    tty = sys.stderr.isatty()
    last_print = 0.0
    for status in watch(client, job, interval=0.25, run_id=run_id):
        last = status
        if show_progress and (tty or time.monotonic() - last_print > 2):
            sys.stderr.write(("\r" if tty else "") + progress_line(status, started) + ("" if tty else "\n"))
            sys.stderr.flush()
            last_print = time.monotonic()
    assert last is not None
    if show_progress:
        sys.stderr.write(("\r" if tty else "") + progress_line(last, started) + "\n")
    return last


def spawn_workers(
    job: str, count: int, redis_url: str | None, log_level: str, extra_env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "irods_ingest", "worker", "--job", job, "--exit-when-idle", "--log-level", log_level]
    env = dict(os.environ) | (extra_env or {})
    if redis_url:
        env["IRODS_INGEST_REDIS_URL"] = redis_url
    return [subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL) for _ in range(count)]


def cmd_start(args: argparse.Namespace) -> int:
    from irods_ingest.actions import start_job
    from irods_ingest.store.jobstore import JobStore

    config = config_from_args(args)
    if args.workers:
        check_local_source(config)
    handler_source = _read_handler(args.event_handler)
    keypair = read_keypair(args.s3_keypair)  # read before anything starts; never stored
    if keypair and not args.workers:
        raise UsageError("--s3-keypair reaches only workers started here: add --workers N (other workers need AWS_* in their environment)")
    client = _client(args)
    result = start_job(client, config, handler_source, force=args.restart)
    if not result.started:
        print(f"job {config.job_name} already has an active run {result.run_id} (use --restart to replace it)", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"job": config.job_name, "run": result.run_id}))
    if not (args.synchronous or args.workers):
        return EXIT_OK
    workers = spawn_workers(config.job_name, args.workers, args.redis_url, args.log_level, keypair) if args.workers else []
    try:
        final = follow(client, config.job_name, result.run_id, args.progress)
    finally:
        for process in workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.terminate()
    final = JobStore(client, config.job_name).status()
    print(summary(final), file=sys.stderr)
    return EXIT_OK if final.state == "done" else EXIT_FAILED


def cmd_plan(args: argparse.Namespace) -> int:
    from irods_ingest.config import check
    from irods_ingest.scan import Filters, scan_directory

    config = check(config_from_args(args))
    if config.s3 is not None:
        return _plan_s3(config)
    check_local_source(config)
    filters = Filters(config)
    totals = {"directories": 0, "files_to_sync": 0, "bytes_to_sync": 0, "excluded": 0, "skipped": 0, "unlistable_directories": 0}
    skipped: list[dict[str, str]] = []
    stack = [""]
    while stack:
        directory = stack.pop()
        try:
            result = scan_directory(config.source_path, directory, config, {}, filters)
        except OSError as exc:
            totals["unlistable_directories"] += 1
            skipped.append({"path": os.path.join(config.source_path, directory), "reason": exc.strerror or str(exc)})
            continue
        totals["directories"] += 1
        stack.extend(result.subdirectories)
        totals["files_to_sync"] += len(result.to_sync)
        totals["bytes_to_sync"] += sum(e.size for e in result.to_sync)
        totals["excluded"] += result.excluded
        totals["skipped"] += len(result.skipped)
        skipped.extend({"path": os.path.join(config.source_path, directory, s.name), "reason": s.reason} for s in result.skipped)
    print(json.dumps({"job": config.job_name, "operation": config.operation.value, "target": config.target_collection, **totals, "skipped_files": skipped[:100]}, indent=2))
    return EXIT_OK


def _plan_s3(config: JobConfig) -> int:
    """``plan`` for an S3 source: list every page (credentials from the environment)."""
    from irods_ingest.s3_io import open_bucket
    from irods_ingest.s3_scan import classify_page, list_prefix
    from irods_ingest.scan import Filters

    assert config.s3 is not None
    bucket = open_bucket(config.s3)
    filters = Filters(config)
    totals = {"prefixes": 0, "pages": 0, "files_to_sync": 0, "bytes_to_sync": 0, "excluded": 0, "skipped": 0}
    skipped: list[dict[str, str]] = []
    stack: list[tuple[str, str]] = [("", "")]
    while stack:
        directory, token = stack.pop()
        page = bucket.list_page(list_prefix(config.s3, directory), token)
        result = classify_page(page, config.s3, directory, filters)
        totals["pages"] += 1
        totals["prefixes"] += 0 if token else 1
        if page.next_token:
            stack.append((directory, page.next_token))
        stack.extend((sub, "") for sub in result.subdirectories)
        totals["files_to_sync"] += len(result.candidates)
        totals["bytes_to_sync"] += sum(e.size for e in result.candidates)
        totals["excluded"] += result.excluded
        totals["skipped"] += len(result.skipped)
        skipped.extend({"path": config.s3.physical_path(f"{directory}/{s.name}" if directory else s.name), "reason": s.reason}
                       for s in result.skipped)
    print(json.dumps({"job": config.job_name, "operation": config.operation.value, "target": config.target_collection,
                      "source": config.source_root, **totals, "skipped_files": skipped[:100]}, indent=2))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from irods_ingest.actions import stop_job

    stopped = stop_job(_client(args), args.job_name)
    print(f"job {args.job_name}: " + ("stopped" if stopped else "no active run"))
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from irods_ingest.store.jobstore import JobStore

    client = _client(args)
    final = follow(client, args.job_name, None, True)
    final = JobStore(client, args.job_name).status()
    print(summary(final), file=sys.stderr)
    return EXIT_OK if final.state in ("done", "none") else EXIT_FAILED


def cmd_list(args: argparse.Namespace) -> int:
    from irods_ingest.actions import jobs
    from irods_ingest.store.jobstore import JobStore

    client = _client(args)
    statuses = jobs(client)
    if args.format == "json":
        print(json.dumps([{**s.to_dict(), "history": JobStore(client, s.job).history(10)} for s in statuses], indent=2))
        return EXIT_OK
    print(f"{'JOB':30} {'RUN':26} {'STATE':10} {'SYNCED':>8} {'FAILED':>7} {'QUEUED':>7}")
    for s in statuses:
        print(f"{s.job:30} {s.run_id or '-':26} {s.state:10} {s.counters['files_synced']:>8} {s.counters['files_failed']:>7} {s.queued:>7}")
    return EXIT_OK


def cmd_failures(args: argparse.Namespace) -> int:
    from irods_ingest.store.jobstore import JobStore

    records = JobStore(_client(args), args.job_name).failures()
    if args.format == "json":
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            print(f"{r.get('outcome', 'failed'):8} {r.get('attempts', 1):>3}x  {r.get('path', '')}: {r.get('reason', '')}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from irods_ingest.actions import retry_failed
    from irods_ingest.store.jobstore import JobStore

    client = _client(args)
    result = retry_failed(client, args.job_name)
    if not result.started:
        print(f"job {args.job_name}: nothing to retry (its last run has no failed files)", file=sys.stderr)
        return EXIT_OK
    if result.full_run:
        print(f"job {args.job_name}: {result.note}", file=sys.stderr)
    print(json.dumps({"job": args.job_name, "run": result.run_id, "retry": True, "full_run": result.full_run}))
    if not args.workers:
        return EXIT_OK
    workers = spawn_workers(args.job_name, args.workers, args.redis_url, args.log_level)
    try:
        follow(client, args.job_name, result.run_id, args.progress)
    finally:
        for process in workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.terminate()
    final = JobStore(client, args.job_name).status()
    print(summary(final), file=sys.stderr)
    return EXIT_OK if final.state == "done" else EXIT_FAILED


def cmd_worker(args: argparse.Namespace) -> int:
    from irods_ingest.worker import WorkerOptions, run_worker

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    return run_worker(
        WorkerOptions(
            jobs=args.jobs,
            redis_url=args.redis_url,
            concurrency=args.concurrency,
            exit_when_idle=args.exit_when_idle,
            metrics_port=args.metrics_port,
        )
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from irods_ingest.demo import run_demo

    return run_demo(path=args.path, redis_url=args.redis_url, workers=args.workers, files=args.files)


def cmd_test_server(args: argparse.Namespace) -> int:
    from irods_ingest.testing.irods_server.cli import main as server_main

    return int(server_main(args.args))


COMMANDS = {
    "start": cmd_start,
    "plan": cmd_plan,
    "stop": cmd_stop,
    "watch": cmd_watch,
    "list": cmd_list,
    "failures": cmd_failures,
    "retry": cmd_retry,
    "worker": cmd_worker,
    "demo": cmd_demo,
    "test-server": cmd_test_server,
}


def main(argv: Sequence[str] | None = None) -> int:
    from irods_ingest import logs

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["test-server"]:  # its options belong to the server's own parser
        return cmd_test_server(argparse.Namespace(args=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(getattr(args, "log_level", "WARNING") or "WARNING")
    try:
        resolve_redis_url(args)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"irods-ingest {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"irods-ingest {args.command}: invalid {problem}", file=sys.stderr)
        return EXIT_USAGE
    except IngestError as exc:
        print(f"irods-ingest {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
