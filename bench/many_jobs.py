#!/usr/bin/env python3
"""Many jobs (issue 18, item 4): N SyncJobs in one namespace on the real API server.

One command::

    .venv/bin/python bench/many_jobs.py [--jobs 200] [--files-per-job 20] [--window-seconds 60] [--out bench/results]

Starts what the operator's end-to-end tests start (tests/testsupport): etcd, kube-apiserver and
kube-controller-manager, a redis-server, the iRODS test server, the operator as its own process
(as an identity of its own, whose every request the apiserver's audit log records) and the
stand-in for the kubelet that runs worker pods as local processes. Then:

1. makes a small tree per job (``--files-per-job`` files) and applies ``--jobs`` SyncJobs, every
   ``--schedule-every``-th with a ``schedule`` far away and a ``runNow`` (so it runs once now and
   then waits for its slot); records, per job, the time from its create call returning to the
   first status that shows it ``Running`` (or past it), and the time until all are ``Succeeded``;
2. once everything settled (no worker running), over ``--window-seconds`` with nothing changing:
   the operator's API requests per minute by verb and resource (the audit log), Redis commands
   per minute (``INFO commandstats`` deltas; the operator is Redis's only client then), and the
   operator's RSS (``/proc/<pid>/status`` VmRSS, VmHWM).

A node has room for a few pods at a time: the kubelet stand-in runs at most
``--max-live-workers`` worker processes at once (a 2-core machine cannot run 200 Python workers
side by side); the other jobs' workers wait for room, as pods Pending on a full node do. Each job
has ``maxReplicas`` 1. The operator runs with its production reconcile interval (5 s) unless
``--reconcile-interval`` says otherwise.

Writes ``many_jobs-<stamp>.json`` and ``many_jobs-<stamp>.md`` to ``--out``. See
docs/performance.md, "Many jobs (issue 18)".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the test kit of the operator's e2e tests (testsupport)

import redis  # noqa: E402
from kubernetes import client as k8s  # noqa: E402

from irods_ingest_operator.constants import GROUP, PLURAL, VERSION  # noqa: E402
from irods_ingest_testkit.irods_server import ADMIN_PASSWORD, ADMIN_USER, ZONE  # noqa: E402
from irods_ingest_testkit.processes import stop_process, wait_until  # noqa: E402
from irods_ingest_testkit.redis_server import RedisServer  # noqa: E402
from testsupport.call_counts import AuditLog, RedisCommandCounter, by_verb, by_verb_and_resource  # noqa: E402
from testsupport.kube import ControlPlane  # noqa: E402
from testsupport.kubelet import LocalKubelet, Replica  # noqa: E402
from testsupport.operator_fixtures import OperatorProcess  # noqa: E402
from testsupport.toolcache import control_plane_bin_dir  # noqa: E402

OPERATOR_USER = "irods-ingest-operator"
NAMESPACE = "many-jobs"
FAR_AWAY = "0 0 1 1 *"  # yearly: the scheduled jobs' next slot stays far away during the run
PAST_RUNNING = {"Running", "Succeeded", "Failed", "Stopped"}


@dataclass
class CappedKubelet(LocalKubelet):
    """The kubelet stand-in on a node with room for ``capacity`` worker pods: a replica starts
    only when fewer than that run (stopping ones included); the others wait, as Pending pods on a
    full node do. Stopping does not hold up the loop (the stand-in waits for each process; with
    hundreds of jobs ending, that alone would pace the run)."""

    capacity: int = 8
    stopping: list[Replica] = field(default_factory=list)

    def live_total(self) -> int:
        stopping = sum(1 for replica in list(self.stopping) if replica.process.poll() is None)
        return stopping + sum(1 for replicas in list(self.replicas.values())
                                        for replica in replicas if replica.process.poll() is None)

    def _scale(self, name: str, live: list[Replica], wanted: int, deployment: Any = None) -> None:
        while len(live) > wanted:
            replica = live.pop()
            replica.process.send_signal(signal.SIGTERM)  # the kubelet's graceful stop
            self.stopping.append(replica)
        self.replicas[name] = live
        self.stopping = [r for r in self.stopping if r.process.poll() is None]  # only this thread changes it
        room = self.capacity - self.live_total()
        while len(live) < wanted and deployment is not None and room > 0:
            live.append(self._launch(deployment, len(live)))
            room -= 1

    def kill_all(self) -> None:
        for replica in [*self.stopping, *(r for replicas in self.replicas.values() for r in replicas)]:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(10)


def start_irods_server(scratch: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    """The iRODS test server as a process of its own (as bench/run.py starts it): in this one, it
    would share the GIL with the phase polling."""
    (scratch / "irods").mkdir(parents=True, exist_ok=True)
    log = (scratch / "irods-test-server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "irods_ingest", "test-server", "--port", "0", "--control-port", "0",
         "--data-dir", str(scratch / "irods")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the iRODS test server did not start: {line!r}")
    return process, match.group(1), int(match.group(2))


def rss_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def make_trees(root: Path, jobs: int, files: int) -> list[Path]:
    trees = []
    for job in range(jobs):
        tree = root / f"job{job:04d}"
        for index in range(files):
            path = tree / f"d{index % 2}" / f"f{index}.dat"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(512))
        trees.append(tree)
    return trees


def job_spec(source: Path, collection: str, *, scheduled: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"path": str(source), "volume": {"hostPath": {"path": str(source), "type": "Directory"}}},
        "destination": {"collection": collection, "connectionSecret": {"name": "irods-connection"}},
        "operation": "PutSync",
        "workers": {"minReplicas": 0, "maxReplicas": 1, "filesPerTask": 10},
    }
    if scheduled:
        spec.update(schedule=FAR_AWAY, runNow="many-jobs")
    return spec


def per_minute(counts: dict[str, int], seconds: float) -> dict[str, float]:
    return {key: round(value * 60.0 / seconds, 1) for key, value in counts.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="many-jobs-"))
    # Sources outside /tmp: worker pods reserve /tmp, and the spec refuses sources there.
    host_dir = Path(tempfile.mkdtemp(prefix="many-jobs-src-", dir="/var/tmp"))
    plane = ControlPlane(bin_dir=control_plane_bin_dir(), state_dir=scratch / "kube",
                         crds=sorted((REPO / "deploy" / "crds").glob("*.yaml")),
                         extra_users={OPERATOR_USER: ("system:masters",)}, audit_users=(OPERATOR_USER,))
    redis_server = RedisServer(data_dir=scratch / "redis")
    irods: subprocess.Popen[bytes] | None = None
    operator: OperatorProcess | None = None
    kubelet: CappedKubelet | None = None
    api: k8s.ApiClient | None = None
    try:
        started = time.monotonic()
        plane.start()
        redis_server.start()
        irods, irods_host, irods_port = start_irods_server(scratch)
        api = plane.api_client()
        core, apps, objects = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.CustomObjectsApi(api)
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NAMESPACE)))
        environment = {"irods_host": irods_host, "irods_port": irods_port, "irods_user_name": ADMIN_USER,
                       "irods_zone_name": ZONE}
        core.create_namespaced_secret(NAMESPACE, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="irods-connection"),
            string_data={"irods_environment.json": json.dumps(environment), "password": ADMIN_PASSWORD}))
        trees = make_trees(host_dir, args.jobs, args.files_per_job)
        print(f"control plane, Redis, iRODS and {args.jobs} trees ready in {time.monotonic() - started:.1f} s",
              flush=True)

        kubelet = CappedKubelet(api, NAMESPACE, scratch / "pods", interval=1.0, capacity=args.max_live_workers)
        kubelet.start()
        env = plane.operator_env(NAMESPACE, redis_server.url, user=OPERATOR_USER)
        env["IRODS_INGEST_OPERATOR_RECONCILE_INTERVAL"] = str(args.reconcile_interval)
        operator = OperatorProcess(env, scratch / "operator.log")
        time.sleep(3.0)  # the operator's first list and watch
        audit = AuditLog(plane.audit_log_path)
        commands = RedisCommandCounter(redis.Redis.from_url(redis_server.url))
        audit.mark()
        commands.mark()
        busy_started = time.monotonic()

        # --- apply, and follow each job to Running, then all to Succeeded
        applied: dict[str, float] = {}
        running_at: dict[str, float] = {}
        succeeded_at: dict[str, float] = {}
        stop_watching = threading.Event()

        def watch() -> None:
            while not stop_watching.is_set():
                listing = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
                seen = time.monotonic()
                for item in listing["items"]:
                    name, phase = item["metadata"]["name"], (item.get("status") or {}).get("phase", "")
                    if phase in PAST_RUNNING:
                        running_at.setdefault(name, seen)
                    if phase == "Succeeded":
                        succeeded_at.setdefault(name, seen)
                stop_watching.wait(args.poll_seconds)

        watcher = threading.Thread(target=watch, name="phases", daemon=True)
        watcher.start()
        for index, tree in enumerate(trees):
            name = f"job{index:04d}"
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SyncJob", "metadata": {"name": name},
                    "spec": job_spec(tree, f"/{ZONE}/home/{ADMIN_USER}/many/{name}",
                                     scheduled=args.schedule_every > 0 and index % args.schedule_every == 0)}
            objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            applied[name] = time.monotonic()
        applied_all = time.monotonic()
        wait_until(lambda: len(running_at) == args.jobs, timeout=args.timeout, what="every job Running", interval=0.5)
        wait_until(lambda: len(succeeded_at) == args.jobs, timeout=args.timeout, what="every job Succeeded",
                   interval=0.5)
        all_succeeded = time.monotonic()
        stop_watching.set()
        watcher.join(10)
        busy_seconds = all_succeeded - busy_started
        busy_calls = audit.calls(user=OPERATOR_USER)
        busy_commands = commands.delta()

        # --- settle: no worker runs, every Deployment at zero; then two passes more
        def settled() -> bool:
            deployments = apps.list_namespaced_deployment(NAMESPACE).items
            return (len(deployments) == args.jobs and all((d.spec.replicas or 0) == 0 for d in deployments)
                    and kubelet.live_total() == 0)

        wait_until(settled, timeout=args.timeout, what="every job settled, no worker running", interval=1.0)
        time.sleep(2 * args.reconcile_interval)

        # --- the idle window
        assert operator.process.pid
        rss_before = rss_kib(operator.process.pid)
        audit.mark()
        commands.mark()
        window_started = time.monotonic()
        samples = []
        while time.monotonic() - window_started < args.window_seconds:
            samples.append(rss_kib(operator.process.pid)["VmRSS"])
            time.sleep(1.0)
        window = time.monotonic() - window_started
        idle_calls = audit.calls(user=OPERATOR_USER)
        idle_commands = commands.delta()
        idle_writes = commands.writes(idle_commands)
        rss_after = rss_kib(operator.process.pid)

        to_running = sorted(running_at[name] - applied[name] for name in applied)
        last = max(applied, key=lambda name: applied[name])
        passes = window / args.reconcile_interval
        api_writes = [call for call in idle_calls if call.write]
        return {
            "parameters": {**vars(args), "cpus": os.cpu_count()},
            "apply": {
                "apply_all_seconds": round(applied_all - min(applied.values()), 2),
                "last_job": last,
                "last_job_apply_to_running_seconds": round(running_at[last] - applied[last], 2),
                "apply_to_running_seconds": {
                    "median": round(statistics.median(to_running), 2),
                    "p95": round(to_running[int(0.95 * (len(to_running) - 1))], 2),
                    "max": round(to_running[-1], 2),
                },
                "first_apply_to_all_succeeded_seconds": round(all_succeeded - min(applied.values()), 2),
                "poll_resolution_seconds": args.poll_seconds,
            },
            "busy": {
                "seconds": round(busy_seconds, 1),
                "api_requests_per_minute_by_verb": per_minute(by_verb(busy_calls), busy_seconds),
                "redis_commands": sum(busy_commands.values()),
            },
            "idle": {
                "window_seconds": round(window, 1),
                "reconcile_passes_per_job": round(passes, 1),
                "api_requests_per_minute_by_verb": per_minute(by_verb(idle_calls), window),
                "api_requests_per_minute_by_verb_and_resource": per_minute(by_verb_and_resource(idle_calls), window),
                "api_writes": [call.describe() for call in api_writes],
                "api_reads_per_job_per_pass": round(
                    sum(1 for call in idle_calls if not call.write) / (args.jobs * passes), 2),
                "redis_commands_per_minute": per_minute(idle_commands, window),
                "redis_writes": idle_writes,
                "redis_commands_per_job_per_pass": round(sum(idle_commands.values()) / (args.jobs * passes), 2),
            },
            "operator_rss_kib": {
                "before_window": rss_before, "after_window": rss_after,
                "window_max": max(samples) if samples else None,
            },
        }
    finally:
        if operator is not None:
            stop_process(operator.process)
            log = scratch / "operator.log"
            if log.exists() and args.keep_log:
                shutil.copy(log, Path(args.out) / "many_jobs-operator.log")
        if kubelet is not None:
            kubelet.stop()
            kubelet.kill_all()
        if api is not None:
            api.close()
        plane.close()
        if irods is not None:
            stop_process(irods)
        redis_server.close()
        shutil.rmtree(host_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def markdown(results: dict[str, Any]) -> str:
    p, a, b, i, r = (results[key] for key in ("parameters", "apply", "busy", "idle", "operator_rss_kib"))
    lines = [
        f"# Many jobs: {p['jobs']} SyncJobs x {p['files_per_job']} files",
        "",
        f"{p['cpus']} CPUs; reconcile interval {p['reconcile_interval']} s; at most {p['max_live_workers']} worker "
        f"processes at once (maxReplicas 1 each); every {p['schedule_every']}th job scheduled (far away, with runNow).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| {p['jobs']} creates | {a['apply_all_seconds']} s |",
        f"| last job ({a['last_job']}): apply → Running | {a['last_job_apply_to_running_seconds']} s |",
        f"| apply → Running, median / p95 / max | {a['apply_to_running_seconds']['median']} / "
        f"{a['apply_to_running_seconds']['p95']} / {a['apply_to_running_seconds']['max']} s |",
        f"| first apply → all Succeeded | {a['first_apply_to_all_succeeded_seconds']} s |",
        f"| busy: API requests per minute by verb | {b['api_requests_per_minute_by_verb']} |",
        f"| idle window | {i['window_seconds']} s ({i['reconcile_passes_per_job']} passes per job) |",
        f"| idle: API requests per minute by verb | {i['api_requests_per_minute_by_verb']} |",
        f"| idle: API writes | {len(i['api_writes'])} |",
        f"| idle: API reads per job and pass | {i['api_reads_per_job_per_pass']} |",
        f"| idle: Redis commands per minute | {i['redis_commands_per_minute']} |",
        f"| idle: Redis writes | {sum(i['redis_writes'].values())} |",
        f"| idle: Redis commands per job and pass | {i['redis_commands_per_job_per_pass']} |",
        f"| operator RSS (VmRSS / VmHWM) after the window | {r['after_window'].get('VmRSS', 0) / 1024:.0f} MiB / "
        f"{r['after_window'].get('VmHWM', 0) / 1024:.0f} MiB |",
        "",
        "idle: API requests per minute by verb and resource: "
        + ", ".join(f"{k} {v}" for k, v in i["api_requests_per_minute_by_verb_and_resource"].items()),
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200, help="SyncJobs to apply (default 200)")
    parser.add_argument("--files-per-job", type=int, default=20, help="files in each job's tree (default 20)")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="the idle window (default 60)")
    parser.add_argument("--reconcile-interval", type=float, default=5.0,
                        help="the operator's RECONCILE_INTERVAL (default 5, the production default)")
    parser.add_argument("--max-live-workers", type=int, default=8,
                        help="worker processes the kubelet stand-in runs at once (default 8)")
    parser.add_argument("--schedule-every", type=int, default=4,
                        help="every Nth job has a schedule (far away) and a runNow (default 4; 0: none)")
    parser.add_argument("--poll-seconds", type=float, default=0.5, help="how often phases are read (default 0.5)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="give up waiting after this long (default 1200)")
    parser.add_argument("--keep-log", action="store_true", help="copy the operator's log to --out")
    parser.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    (out / f"many_jobs-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (out / f"many_jobs-{stamp}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
