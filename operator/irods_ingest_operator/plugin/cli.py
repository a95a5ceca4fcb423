"""``kubectl ingest failures|retry|status JOB``: the commands (the ``kubectl-ingest`` script).

Connection flags work as kubectl's, before or after the command: ``--kubeconfig``,
``--context``, ``-n/--namespace``, ``--request-timeout``; without them kubectl's current
context and its namespace apply. Exit status: 0 done, 1 refused or failed (the message says
why), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from irods_ingest_operator import __version__
from irods_ingest_operator.constants import FAILURES_CONFIG_MAP_SUFFIX, GROUP, PLURAL
from irods_ingest_operator.plugin.kubectl import Kubectl, KubectlError
from irods_ingest_operator.plugin.views import (
    FailureReport,
    failures_table,
    no_report_message,
    run_is_active,
    status_lines,
)

SYNCJOBS: Final = f"{PLURAL}.{GROUP}"  # fully qualified: never another group's "syncjobs"
CONFIG_MAPS: Final = "configmaps"
OUTPUTS: Final = ("table", "json", "paths")


class Refused(Exception):
    """The command cannot do what was asked; the message says why."""


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    kubectl = Kubectl(kubeconfig=getattr(args, "kubeconfig", None), context=getattr(args, "context", None),
                      namespace=getattr(args, "namespace", None), request_timeout=getattr(args, "request_timeout", None))
    try:
        return int(args.run(kubectl, args, out, err))
    except (KubectlError, Refused) as exc:
        print(f"kubectl ingest {args.command}: {exc}", file=err)
        return 1


# ---------------------------------------------------------------------- commands
def failures(kubectl: Kubectl, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    job = _syncjob(kubectl, args.job)
    name = _qualified(job)
    config_map = f"{args.job}{FAILURES_CONFIG_MAP_SUFFIX}"
    found = kubectl.get(CONFIG_MAPS, config_map)
    if found is None:
        message = no_report_message(name, config_map, job)
        print(message, file=out if args.output == "table" else err)
        return 0
    report = FailureReport.from_config_map(found)
    if args.output == "json":
        print(report.to_json(name), file=out)
    elif args.output == "paths":
        for record in report.records:
            if record.get("path"):
                print(record["path"], file=out)
    else:
        current = ((job.get("status") or {}).get("run") or {}).get("id")
        print(failures_table(name, report, current), file=out)
    return 0


def retry(kubectl: Kubectl, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    job = _syncjob(kubectl, args.job)
    previous = (job.get("spec") or {}).get("retryFailed")
    token = args.token or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if token == previous:
        raise Refused(f"spec.retryFailed is already {token!r}: the operator acts only on a new value")
    patched = kubectl.patch_merge(SYNCJOBS, args.job, {"spec": {"retryFailed": token}})
    name = _qualified(patched)
    was = f" (was {previous!r})" if previous else ""
    print(f"syncjob {name}: spec.retryFailed set to {token!r}{was}.", file=out)
    status = job.get("status") or {}
    when = "after the active run ends" if run_is_active(job) else "now"
    print(f"The operator redoes the last run's failures {when}; follow it with `kubectl ingest status {args.job}`.",
          file=out)
    if status.get("failuresNotRecorded"):
        print("The last run did not record all its failures: the retry runs the whole job, and its change cache"
              " skips what already synced.", file=out)
    return 0


def status(kubectl: Kubectl, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    job = _syncjob(kubectl, args.job)
    print(status_lines(_qualified(job), job), file=out)
    return 0


# ---------------------------------------------------------------------- helpers
def _syncjob(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found = kubectl.get(SYNCJOBS, name)
    if found is None:
        where = f"namespace {kubectl.namespace}" if kubectl.namespace else "the current namespace"
        raise Refused(f"syncjob {name} not found in {where}")
    return found


def _qualified(body: dict[str, Any]) -> str:
    metadata = body.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a flag given before the command is not reset by the command's own parser.
    connection.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the SyncJob's namespace")
    connection.add_argument("--context", default=argparse.SUPPRESS, help="the kubeconfig context to use")
    connection.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="the kubeconfig file to use")
    connection.add_argument("--request-timeout", default=argparse.SUPPRESS, help="passed to kubectl")
    parser = argparse.ArgumentParser(
        prog="kubectl ingest", parents=[connection],
        description="SyncJobs (ingest.irods.dev) for namespace users: failed files, retries, status. "
                    "Reads what the operator writes (the SyncJob and its <job>-failures ConfigMap); needs no Redis.")
    parser.add_argument("--version", action="version", version=f"kubectl-ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("failures", parents=[connection], help="list the last run's failed files")
    listing.add_argument("job", metavar="JOB", help="the SyncJob's name")
    listing.add_argument("-o", "--output", choices=OUTPUTS, default="table",
                         help="table (default), json (the whole report), paths (one per line)")
    listing.set_defaults(run=failures)
    again = commands.add_parser("retry", parents=[connection],
                                help="ask the operator to redo the last run's failures (patches spec.retryFailed)")
    again.add_argument("job", metavar="JOB", help="the SyncJob's name")
    again.add_argument("--token", help="the new spec.retryFailed value (default: the time now, RFC 3339)")
    again.set_defaults(run=retry)
    summary = commands.add_parser("status", parents=[connection], help="phase, progress, counts and conditions")
    summary.add_argument("job", metavar="JOB", help="the SyncJob's name")
    summary.set_defaults(run=status)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
