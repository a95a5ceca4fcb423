"""The built-in subcommands: start, plan, stop, watch, list, failures, retry, worker."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from irods_ingest.config import (
    JobConfig,
)

if TYPE_CHECKING:
    pass

from irods_ingest.cli.display import ProgressBar, summary
from irods_ingest.cli.options import (
    UsageError,
    _read_handler,
    check_local_source,
    config_from_args,
    read_keypair,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

def _client(args: argparse.Namespace) -> Any:
    from irods_ingest.store.connection import connect

    return connect(args.redis_url)


def cmd_start(args: argparse.Namespace) -> int:
    from irods_ingest.actions import start_job
    from irods_ingest.actions.local import LocalWorkers, run_with_local_workers

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
    workers = LocalWorkers(args.workers, redis_url=args.redis_url, log_level=args.log_level, env=keypair)
    final = run_with_local_workers(client, config.job_name, result.run_id, workers, ProgressBar() if args.progress else None)
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
    from irods_ingest.actions.local import LocalWorkers, run_with_local_workers

    # No workers of its own: whatever serves the run, follow it to its end.
    final = run_with_local_workers(_client(args), args.job_name, None, LocalWorkers(0), ProgressBar())
    print(summary(final), file=sys.stderr)
    return EXIT_OK if final.state in ("done", "none") else EXIT_FAILED


def cmd_list(args: argparse.Namespace) -> int:
    from irods_ingest.actions import JobActions, jobs

    client = _client(args)
    statuses = jobs(client)
    if args.format == "json":
        print(json.dumps([{**s.to_dict(), "history": JobActions(client, s.job).history(10)} for s in statuses], indent=2))
        return EXIT_OK
    print(f"{'JOB':30} {'RUN':26} {'STATE':10} {'SYNCED':>8} {'FAILED':>7} {'QUEUED':>7}")
    for s in statuses:
        print(f"{s.job:30} {s.run_id or '-':26} {s.state:10} {s.counters['files_synced']:>8} {s.counters['files_failed']:>7} {s.queued:>7}")
    return EXIT_OK


def cmd_failures(args: argparse.Namespace) -> int:
    from irods_ingest.actions import JobActions

    records = JobActions(_client(args), args.job_name).failures()
    if args.format == "json":
        print(json.dumps(records, indent=2))
    else:
        for r in records:
            print(f"{r.get('outcome', 'failed'):8} {r.get('attempts', 1):>3}x  {r.get('path', '')}: {r.get('reason', '')}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from irods_ingest.actions import retry_failed
    from irods_ingest.actions.local import LocalWorkers, run_with_local_workers

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
    workers = LocalWorkers(args.workers, redis_url=args.redis_url, log_level=args.log_level)
    final = run_with_local_workers(client, args.job_name, result.run_id, workers, ProgressBar() if args.progress else None)
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


COMMANDS = {
    "start": cmd_start,
    "plan": cmd_plan,
    "stop": cmd_stop,
    "watch": cmd_watch,
    "list": cmd_list,
    "failures": cmd_failures,
    "retry": cmd_retry,
    "worker": cmd_worker,
}
