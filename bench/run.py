#!/usr/bin/env python3
"""Side-by-side benchmark: this engine vs. irods-capability-automated-ingest 0.7.0.

One command::

    .venv/bin/python bench/run.py [--files N] [--workers 2] [--cases ...] [--out bench/results]

Both systems share ONE redis-server and ONE iRODS test server (a subprocess with its
HTTP control port), the same generated dataset, the same number of worker processes and
``files_per_task``. Every number is reported only after both catalogs were verified
against the source tree. See ``docs/performance.md`` for the method.

(One long file because it runs as a script with no package around it; the cases of issue
18 -- flat and huge directories, iRODS latency -- live in ``bench/cases_more.py``.)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cases_more
import redis
from irods.column import Criterion
from irods.models import Collection, DataObject
from irods.session import iRODSSession

from irods_ingest_testkit.incumbent import CACHE_DIR, INCUMBENT_SPEC
from irods_ingest_testkit.incumbent import incumbent_venv as testkit_incumbent_venv
from irods_ingest_testkit.irods_server.control import ControlClient
from irods_ingest_testkit.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUR_PYTHON = Path(sys.executable)
ZONE, USER, PASSWORD = "tempZone", "rods", "rods"
FILES_PER_TASK = 50
# The scan_noop watcher polls this often: the bound on its timing error (a 100 k scan takes ~0.1-0.2 s)
DISCOVERY_POLL_SECONDS = 0.005
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

ALL_CASES = ["register_new", "register_unchanged", "register_changed10", "put_large", "scan_noop", *cases_more.CASES]
# A case that rescans needs the first sync to have happened (in the same collections).
NEEDS = {"register_unchanged": "register_new", "register_changed10": "register_new", **cases_more.NEEDS}

PUT_HANDLER = """\
from irods_capability_automated_ingest.core import Core
from irods_capability_automated_ingest.utils import Operation


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.PUT
"""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ============================================================================ incumbent venv
def incumbent_venv(cache: Path) -> Path:
    """The incumbent in its own virtualenv (created once, reused; irods_ingest_testkit.incumbent)."""
    return testkit_incumbent_venv(cache, log)


# ============================================================================ datasets
@dataclass
class Dataset:
    root: Path
    files: dict[str, int]  # relative path -> size

    def refresh(self) -> None:
        self.files = {}
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                full = os.path.join(directory, name)
                self.files[os.path.relpath(full, self.root)] = os.lstat(full).st_size


def _small_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.02:
        return 0
    if roll < 0.80:
        return rng.randint(1, 4096)
    if roll < 0.97:
        return rng.randint(4097, 65536)
    return rng.randint(65537, 1 << 20)


def make_small_tree(root: Path, count: int, seed: int = 7, empty: bool = False) -> Dataset:
    """``count`` files in a nested tree: 1-3 levels, 5-300 files a directory, mixed sizes
    (``empty``: the same tree with every file empty -- for the 1 M-file RSS run)."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    blob = rng.randbytes(1 << 20)
    made: dict[str, int] = {}
    directories: list[Path] = [root]
    created = 0
    serial = 0
    while created < count:
        parent = rng.choice(directories[-40:]) if len(directories) > 1 and rng.random() < 0.7 else root
        depth = len(parent.relative_to(root).parts)
        if depth >= 3:
            parent = parent.parent
        serial += 1
        kind = rng.choice(["run", "sample", "batch", "plate", "scan", "day"])
        directory = parent / f"{kind}_{serial:05d}"
        directory.mkdir()
        directories.append(directory)
        files_here = min(count - created, max(5, int(rng.paretovariate(1.3) * 20)), 300)
        for i in range(files_here):
            ext = rng.choice([".dat", ".csv", ".txt", ".tif", ".json", ""])
            name = f"file {i:04d}{ext}" if rng.random() < 0.05 else f"f_{i:04d}{ext}"
            size = _small_size(rng)
            path = directory / name
            if empty:
                size = 0
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            else:
                with open(path, "wb") as handle:
                    handle.write(blob[:size])
            made[str(path.relative_to(root))] = size
        created += files_here
    return Dataset(root, made)


def change_fraction(dataset: Dataset, fraction: float, seed: int = 11) -> list[str]:
    """Append bytes to ``fraction`` of the files (new size and mtime); returns the changed paths."""
    rng = random.Random(seed)
    names = sorted(dataset.files)
    chosen = rng.sample(names, max(1, int(len(names) * fraction)))
    time.sleep(1.1)  # mtimes strictly after the incumbent's whole-second-resolution sync stamps
    for rel in chosen:
        with open(dataset.root / rel, "ab") as handle:
            handle.write(b"changed\n")
        dataset.files[rel] += 8
    return chosen


def make_large_files(root: Path, count: int, mib: int) -> Dataset:
    root.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    made: dict[str, int] = {}
    for i in range(count):
        path = root / f"large_{i:02d}.bin"
        with open(path, "wb") as handle:
            for _ in range(mib):
                handle.write(chunk)
        made[path.name] = mib << 20
    return Dataset(root, made)


def time_find(root: Path, printf: str = "") -> tuple[float, int]:
    """Seconds and file count of ``find ROOT -type f | wc -l`` (the faster of two runs: warm cache).

    ``printf`` (e.g. ``'%s %T@\\n'``) makes find stat every file, as a scan that reads sizes
    and mtimes must.
    """
    best = float("inf")
    count = 0
    action = f" -printf '{printf}'" if printf else ""
    for _ in range(2):
        started = time.perf_counter()
        out = subprocess.run(f"find '{root}' -type f{action} | wc -l", shell=True, check=True, capture_output=True, text=True)
        best = min(best, time.perf_counter() - started)
        count = int(out.stdout.strip())
    return best, count


# ============================================================================ /proc sampling
def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, user+sys CPU seconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    tree, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


class Sampler:
    """Samples RSS of every process in the worker trees (for the RSS curve) every ``interval``."""

    def __init__(self, roots: list[int], interval: float = 1.0) -> None:
        self.roots = roots
        self.interval = interval
        self.curve: list[tuple[float, float]] = []  # (seconds since start, max RSS of one process in MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = [_status_kib(pid, "VmRSS") for root in self.roots for pid in process_tree(root)]
            self.curve.append((round(time.monotonic() - self._started, 2), round(max(rss or [0]) / 1024, 1)))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def cpu_of(roots: list[int]) -> float:
    total = 0.0
    for root in roots:
        for pid in process_tree(root):
            stat = _proc_stat(pid)
            if stat is not None:
                total += stat[1]
    return total


def peak_rss_mib(roots: list[int]) -> tuple[float, float]:
    """(largest VmHWM of one process, largest VmHWM sum of one worker's process tree), MiB."""
    per_process, per_tree = 0, 0
    for root in roots:
        peaks = [_status_kib(pid, "VmHWM") for pid in process_tree(root)]
        per_process = max(per_process, *peaks, 0)
        per_tree = max(per_tree, sum(peaks))
    return round(per_process / 1024, 1), round(per_tree / 1024, 1)


# ============================================================================ Redis accounting
class RedisMonitor:
    """Counts commands executed inside Lua scripts (MONITOR shows them as ``[db lua]``).

    INFO commandstats counts a script's own ``redis.call``s as commands; they are not client
    round trips, so they are subtracted. MONITOR costs the server a little per command, for
    both systems alike.
    """

    LUA = re.compile(rb"^\+?\d+\.\d+ \[\d+ lua\] ")

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.address = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.lua_calls = 0
        self.total = 0
        self._sock = socket.create_connection(self.address, timeout=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sock = self._sock
        sock.settimeout(0.2)
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                break
            buffer += chunk
            lines = buffer.split(b"\r\n")
            buffer = lines.pop()
            for line in lines:
                self.total += 1
                if self.LUA.match(line):
                    self.lua_calls += 1

    def __enter__(self) -> RedisMonitor:
        self._sock.sendall(b"MONITOR\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):  # +OK: monitoring has begun before the run starts
            reply += self._sock.recv(1)
        if reply != b"+OK\r\n":
            raise RuntimeError(f"MONITOR refused: {reply!r}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the last lines arrive
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def redis_snapshot(client: redis.Redis) -> dict[str, Any]:
    info = client.info("all")
    calls = {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in info.items() if key.startswith("cmdstat_")}
    return {
        "calls": calls,
        "reads": int(info["total_reads_processed"]),
        "used_memory": int(info["used_memory"]),
        "used_memory_dataset": int(info["used_memory_dataset"]),
        "keys": int(client.dbsize()),
    }


# ============================================================================ catalog verification
def catalog_of(session: iRODSSession, collection: str) -> dict[str, tuple[int, str]]:
    """Relative logical path -> (size, physical path) of every data object under ``collection``."""
    found: dict[str, tuple[int, str]] = {}
    for where in (Criterion("=", Collection.name, collection), Criterion("like", Collection.name, collection + "/%")):
        query = session.query(Collection.name, DataObject.name, DataObject.size, DataObject.path).filter(where)
        for row in query.get_results():
            logical = f"{row[Collection.name]}/{row[DataObject.name]}"
            found[logical[len(collection) + 1 :]] = (int(row[DataObject.size]), str(row[DataObject.path]))
    return found


def verify(session: iRODSSession, collection: str, dataset: Dataset, registered: bool) -> dict[str, tuple[int, str]]:
    """The catalog under ``collection`` must hold exactly the dataset (sizes; physical paths for register)."""
    catalog = catalog_of(session, collection)
    problems: list[str] = []
    missing = sorted(set(dataset.files) - set(catalog))
    extra = sorted(set(catalog) - set(dataset.files))
    if missing:
        problems.append(f"{len(missing)} missing, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected, e.g. {extra[:3]}")
    wrong_size = [rel for rel, size in dataset.files.items() if rel in catalog and catalog[rel][0] != size]
    if wrong_size:
        problems.append(f"{len(wrong_size)} with the wrong size, e.g. {[(r, catalog[r][0], dataset.files[r]) for r in wrong_size[:3]]}")
    if registered:
        wrong_path = [rel for rel in dataset.files if rel in catalog and catalog[rel][1] != str(dataset.root / rel)]
        if wrong_path:
            problems.append(f"{len(wrong_path)} registered from the wrong physical path, e.g. {wrong_path[:3]}")
    if problems:
        raise AssertionError(f"catalog {collection} is wrong: " + "; ".join(problems))
    return catalog


def catalog_digest(catalog: dict[str, tuple[int, str]]) -> str:
    """SHA-256 over the sorted (relative path, size) pairs: equal digests = identical catalogs across runs."""
    digest = hashlib.sha256()
    for rel in sorted(catalog):
        digest.update(f"{rel}\0{catalog[rel][0]}\n".encode())
    return digest.hexdigest()


# ============================================================================ the harness
@dataclass
class Env:
    scratch: Path
    redis_url: str
    irods_host: str
    irods_port: int
    control: ControlClient
    incumbent: Path | None
    workers: int
    base: str  # the collection that holds this run's collections
    stamp: str
    profile_dir: Path | None = None
    sample_interval: float = 1.0
    scan_repeats: int = 3
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)
    service_pids: dict[str, int] = field(default_factory=dict)  # "irods", "redis": their CPU is measured too

    def irods_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IRODS_", "CELERY_", "PYTHONPATH"))}
        return env | {
            "IRODS_HOST": self.irods_host, "IRODS_PORT": str(self.irods_port), "IRODS_USER_NAME": USER,
            "IRODS_ZONE_NAME": ZONE, "IRODS_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1",
            "HOME": str(self.scratch / "home"),  # anything either system writes under ~ stays in scratch
        }

    def session(self) -> iRODSSession:
        return iRODSSession(host=self.irods_host, port=self.irods_port, user=USER, password=PASSWORD, zone=ZONE)


def spawn(env: Env, command: list[str], environ: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    handle = open(log_path, "ab")  # noqa: SIM115 - closed with the process in stop_all
    process = subprocess.Popen(command, env=environ, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    handle.close()
    env.spawned.append(process)
    return process


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM each process group (warm shutdown), then SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # children of an exited leader too
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, processes: Sequence[subprocess.Popen[bytes]] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: a process exited with {process.returncode} while waiting")
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def run_timed(command: list[str], environ: dict[str, str], log_path: Path, timeout: float) -> tuple[float, int, float]:
    """Run a command to completion; (wall seconds, exit code, its own user+sys CPU seconds)."""
    with open(log_path, "ab") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=environ, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise TimeoutError(f"{command[:4]} did not finish within {timeout:.0f}s (log: {log_path})")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # nothing it started may outlive it
    return wall, process.returncode, usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------- workers
def start_incumbent_workers(env: Env, tag: str, processes_count: int | None = None, concurrency: int = 1) -> list[subprocess.Popen[bytes]]:
    assert env.incumbent is not None
    environ = env.irods_env() | {"CELERY_BROKER_URL": env.redis_url}
    logs = [env.scratch / "logs" / f"{tag}-celery-{i}.log" for i in range(processes_count or env.workers)]
    processes = [
        spawn(env, [str(env.incumbent / "bin" / "celery"), "-A", "irods_capability_automated_ingest", "worker",
                    "-c", str(concurrency), "-Q", "restart,path,file", "-n", f"bench{i}-{tag}@%h", "--loglevel", "INFO"],
              environ, log)
        for i, log in enumerate(logs)
    ]
    wait_for(lambda: all(b" ready." in p.read_bytes() for p in logs if p.exists()) and all(p.exists() for p in logs),
             120, "the incumbent's celery workers", processes)
    return processes


def start_our_workers(env: Env, job: str, tag: str, client: redis.Redis, processes_count: int | None = None,
                      concurrency: int = 1) -> list[subprocess.Popen[bytes]]:
    environ = env.irods_env() | {"IRODS_INGEST_REDIS_URL": env.redis_url}
    processes = []
    count = processes_count or env.workers
    for i in range(count):
        command = [str(OUR_PYTHON), "-m", "irods_ingest", "worker", "--job", job, "--log-level", "WARNING",
                   "--concurrency", str(concurrency)]
        worker_env = environ
        if env.profile_dir is not None:
            command = [str(OUR_PYTHON), str(HERE / "profile_worker.py"), "--job", job, "--log-level", "WARNING"]
            worker_env = environ | {"BENCH_PROFILE_OUT": str(env.profile_dir / f"{tag}-worker{i}")}
        processes.append(spawn(env, command, worker_env, env.scratch / "logs" / f"{tag}-ours-{i}.log"))
    pattern = f"ii:{{{job}}}:heartbeat:*"
    wait_for(lambda: len(client.keys(pattern)) >= count * concurrency, 60, "our workers' heartbeats", processes)
    return processes


# ---------------------------------------------------------------------------- one measured run
@dataclass
class Spec:
    case: str
    system: str  # "incumbent" | "ours"
    source: Dataset
    collection: str
    job: str
    operation: str  # RegisterSync | Put | NoOp
    files: int  # files the run walks (the per-file denominator)
    synced_expected: int  # files that must be (re)written to the catalog
    verify: bool = True
    processes: int | None = None  # worker processes (None: --workers)
    concurrency: int = 1  # threads (each with its iRODS connection) per worker process
    latency_ms: float = 0.0  # added by the iRODS test server to every API reply during the run
    discovery: bool = False  # time scan+enqueue (files_discovered reaching ``files``), without MONITOR


def measure(env: Env, spec: Spec) -> dict[str, Any]:
    load_at_start = os.getloadavg()
    client = redis.Redis.from_url(env.redis_url)
    tag = f"{spec.case}-{spec.system}"
    logs = env.scratch / "logs"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        env.control.set_latency_ms(spec.latency_ms)
        if spec.system == "incumbent":
            workers = start_incumbent_workers(env, tag, spec.processes, spec.concurrency)
            assert env.incumbent is not None
            command = [str(env.incumbent / "bin" / "python"), "-m", "irods_capability_automated_ingest.irods_sync", "start",
                       str(spec.source.root), spec.collection, "--job_name", spec.job, "--files_per_task", str(FILES_PER_TASK),
                       "--synchronous", "--log_level", "WARNING"]  # as ours: no per-file log lines
            if spec.operation == "Put":
                handler = env.scratch / "put_handler.py"
                handler.write_text(PUT_HANDLER)
                command += ["--event_handler", str(handler)]
            environ = env.irods_env() | {"CELERY_BROKER_URL": env.redis_url}
        else:
            workers = start_our_workers(env, spec.job, tag, client, spec.processes, spec.concurrency)
            command = [str(OUR_PYTHON), "-m", "irods_ingest", "start", str(spec.source.root), spec.collection, "--job-name",
                       spec.job, "--files-per-task", str(FILES_PER_TASK), "--operation", spec.operation, "--synchronous",
                       "--redis-url", env.redis_url]
            environ = env.irods_env()
        roots = [w.pid for w in workers]
        time.sleep(1.0)  # let start-up traffic (celery mingle, first heartbeats) settle before the baseline
        env.control.reset_counts()
        before = redis_snapshot(client)
        cpu_before = cpu_of(roots)
        services_before = {name: cpu_of([pid]) for name, pid in env.service_pids.items()}
        discovered_at: list[float] = []
        # Only a fresh job's run: a rescan's run hash still shows the previous run's totals at first.
        timed_discovery = spec.discovery or spec.case == "scan_noop"
        watcher = _DiscoveryWatcher(env.redis_url, spec.job, spec.files) if timed_discovery else None
        # scan_noop times a ~0.1 s interval of large variadic pushes: MONITOR (which makes Redis
        # format every argument for the harness to parse) would cost more than the scan itself,
        # so that case counts Lua's own commands with the rest instead of subtracting them.
        monitored = not timed_discovery
        monitor_context = RedisMonitor(env.redis_url) if monitored else contextlib.nullcontext(None)
        with monitor_context as monitor, Sampler(roots, env.sample_interval) as sampler:
            if watcher:
                watcher.start()
            wall, code, driver_cpu = run_timed(command, environ, logs / f"{tag}-start.log", timeout=3600)
            if watcher:
                discovered_at = watcher.stop()
        cpu_after = cpu_of(roots)
        services_cpu = {name: cpu_of([pid]) - services_before[name] for name, pid in env.service_pids.items()}
        rss_process, rss_tree = peak_rss_mib(roots)
        api = env.control.api_counts()
        after = redis_snapshot(client)
        if code != 0:
            raise RuntimeError(f"{spec.system} {spec.case}: start exited {code} (log: {logs / (tag + '-start.log')})")
    finally:
        stop_processes(workers)
        client.close()
        env.control.set_latency_ms(0)
    client = redis.Redis.from_url(env.redis_url)
    settled = redis_snapshot(client)  # memory once the workers' connections are gone
    our_status = _our_status(client, spec.job) if spec.system == "ours" else None
    client.close()

    harness_commands = {"info": 1, "dbsize": 1, "monitor": 1 if monitored else 0}  # the "before" snapshot and the MONITOR itself
    if watcher:
        harness_commands["hgetall"] = watcher.polls
    calls = {k: v - before["calls"].get(k, 0) - harness_commands.get(k, 0) for k, v in after["calls"].items()}
    calls = {k: v for k, v in calls.items() if v > 0}
    all_calls = sum(calls.values())
    lua_calls = monitor.lua_calls if monitor is not None else None
    client_commands = all_calls - (lua_calls or 0)
    round_trips = after["reads"] - before["reads"] - (3 if monitored else 2) - (watcher.polls if watcher else 0)
    api_total = sum(api.values())
    files = max(1, spec.files)
    result: dict[str, Any] = {
        "system": spec.system,
        "collection": spec.collection,
        "job": spec.job,
        "operation": spec.operation,
        "files": spec.files,
        "files_synced_expected": spec.synced_expected,
        "wall_seconds": round(wall, 3),
        "files_per_second": round(spec.files / wall, 1),
        "worker_processes": spec.processes or env.workers,
        "threads_per_worker": spec.concurrency,
        "latency_ms": spec.latency_ms,
        "load_before": [round(x, 2) for x in load_at_start],
        "bytes": sum(spec.source.files.values()),
        "worker_cpu_seconds": round(cpu_after - cpu_before, 3),
        "worker_cpu_ms_per_file": round((cpu_after - cpu_before) * 1000 / files, 3),
        "driver_cpu_seconds": round(driver_cpu, 3),
        # the shared services' CPU while this case ran (the iRODS test server is Python: on a
        # 2-CPU machine its share bounds how far more connections can go)
        **{f"{name}_cpu_ms_per_file": round(cpu * 1000 / files, 3) for name, cpu in services_cpu.items()},
        "redis_commands_total": all_calls,
        "redis_commands_in_lua": lua_calls,  # None: not measured (scan_noop), counted in the per-file figure
        "redis_commands_per_file": round(client_commands / files, 3),
        "redis_round_trips_per_file": round(round_trips / files, 3),
        "redis_commands_by_name": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
        "irods_api_calls": {str(k): v for k, v in sorted(api.items())},
        "irods_api_calls_per_file": round(api_total / files, 3),
        "rss_peak_mib_per_process": rss_process,
        "rss_peak_mib_per_worker_tree": rss_tree,
        "rss_curve_mib": sampler.curve,
        "redis_memory_delta_bytes": settled["used_memory"] - before["used_memory"],
        "redis_dataset_delta_bytes": settled["used_memory_dataset"] - before["used_memory_dataset"],
        "redis_keys_delta": settled["keys"] - before["keys"],
        "redis_bytes_kept_per_synced_file": (
            round((settled["used_memory_dataset"] - before["used_memory_dataset"]) / spec.synced_expected, 1)
            if spec.synced_expected else None
        ),
    }
    if discovered_at:
        result["seconds_until_all_discovered"] = round(discovered_at[0], 3)  # from launching `start`
        if len(discovered_at) > 1:
            result["seconds_until_all_discovered_from_run_start"] = round(discovered_at[1], 3)
    if our_status is not None:
        result["engine_counters"] = our_status
    if spec.verify:
        with env.session() as session:
            catalog = verify(session, spec.collection, spec.source, registered=spec.operation.startswith("Register"))
        result["catalog_verified"] = True
        result["catalog_digest"] = catalog_digest(catalog)
    log(f"{spec.case:20} {spec.system:9} {spec.files} files in {wall:.2f}s = {spec.files / wall:,.0f} files/s")
    return result


class _DiscoveryWatcher:
    """Polls our run's ``files_discovered`` (one HGET a poll) to time scan+enqueue."""

    def __init__(self, url: str, job: str, files: int) -> None:
        self.client = redis.Redis.from_url(url)
        self.key = f"ii:{{{job}}}:run"
        self.files = files
        self.polls = 0
        self.found: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._started = time.perf_counter()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and not self.found:
            values = self.client.hgetall(self.key)
            self.polls += 1
            discovered = int(values.get(b"files_discovered", 0) or 0)
            state = values.get(b"state", b"")
            if discovered >= self.files and state in (b"running", b"finishing", b"done"):
                self.found.append(time.perf_counter() - self._started)
                started = float(values.get(b"started", 0) or 0)
                if started:
                    self.found.append(time.time() - started)
            self._stop.wait(DISCOVERY_POLL_SECONDS)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(5)
        self.client.close()
        return self.found


def _our_status(client: redis.Redis, job: str) -> dict[str, Any]:
    from irods_ingest.jobstate import RunState

    status = RunState(client, job).status()
    return {"state": status.state, **status.counters}


# ============================================================================ cases
def plan_cases(cases: list[str]) -> list[str]:
    wanted = set(cases)
    for case in cases:
        if case in NEEDS:
            wanted.add(NEEDS[case])
    return [c for c in ALL_CASES if c in wanted]


def run_case(env: Env, case: str, datasets: dict[str, Dataset], systems: list[str],
             options: argparse.Namespace | None = None) -> dict[str, Any]:
    if case in cases_more.CASES:
        more: dict[str, Any] = cases_more.run_case(env, case, datasets, systems, options, sys.modules[__name__])
        compare_systems(env, more)
        return more
    entry: dict[str, Any] = {"case": case, "load_before": [round(x, 2) for x in os.getloadavg()]}
    small = datasets["small"]
    n = len(small.files)
    for system in systems:
        short = "inc" if system == "incumbent" else "ours"
        if case == "register_new":
            spec = Spec(case, system, small, f"{env.base}/{short}-reg", f"b{env.stamp}-{short}-reg", "RegisterSync", n, n)
        elif case == "register_unchanged":
            spec = Spec(case, system, small, f"{env.base}/{short}-reg", f"b{env.stamp}-{short}-reg", "RegisterSync", n, 0)
        elif case == "register_changed10":
            spec = Spec(case, system, small, f"{env.base}/{short}-reg", f"b{env.stamp}-{short}-reg", "RegisterSync", n,
                        int(datasets["changed_count"].files["n"]))
        elif case == "put_large":
            large = datasets["large"]
            spec = Spec(case, system, large, f"{env.base}/{short}-put", f"b{env.stamp}-{short}-put", "Put",
                        len(large.files), len(large.files))
        elif case == "scan_noop":
            if system == "ours":
                entry[system] = _scan_samples(env, entry, small, short, n)
            continue
        else:
            raise ValueError(case)
        if system == "incumbent":
            spec.job += f"-{case}"  # a single-pass incumbent job name is used once; its cache is per path+target
        entry[system] = measure(env, spec)
    compare_systems(env, entry)
    if case == "scan_noop" and "ours" in entry:
        _scan_fractions(entry, n)
    return entry


def compare_systems(env: Env, entry: dict[str, Any]) -> None:
    """The speedup, once both catalogs are shown to be identical (paths and sizes)."""
    case = entry["case"]
    if "incumbent" in entry and "ours" in entry:
        entry["speedup"] = round(entry["ours"]["files_per_second"] / entry["incumbent"]["files_per_second"], 2)
        with env.session() as session:
            a = catalog_of(session, entry["incumbent"]["collection"])
            b = catalog_of(session, entry["ours"]["collection"])
        same = {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}
        if not same:
            raise AssertionError(f"{case}: the two systems' catalogs differ")
        entry["catalogs_identical"] = True


def _scan_fractions(entry: dict[str, Any], n: int) -> None:
    samples = entry["scan_samples"]
    # Best against best, as find's own timing is the faster of two warm runs; the median of
    # the per-sample ratios (each scan against the find timed just before it) is kept beside it.
    seconds = min(s["scan_seconds"] for s in samples)
    find_seconds = min(s["find_seconds"] for s in samples)
    stat_seconds = min(s["find_stat_seconds"] for s in samples)
    rate = n / seconds
    entry["find_files_per_second"] = round(n / find_seconds, 1)
    entry["scan_enqueue_files_per_second"] = round(rate, 1)
    entry["scan_fraction_of_find"] = round(find_seconds / seconds, 4)
    entry["scan_fraction_of_find_median"] = round(statistics.median(s["find_seconds"] / s["scan_seconds"] for s in samples), 4)
    entry["find_stat_files_per_second"] = round(n / stat_seconds, 1)
    entry["scan_fraction_of_find_stat"] = round(stat_seconds / seconds, 4)


def _scan_samples(env: Env, entry: dict[str, Any], small: Dataset, short: str, n: int) -> dict[str, Any]:
    """``scan_noop`` ``env.scan_repeats`` times, each a fresh NoOp job on fresh workers, each
    right after timing ``find`` on the same (warm) tree: a scan of 100 k files takes ~0.1 s,
    where one run's noise (page cache, the other CPU's load) is as large as the effect."""
    samples: list[dict[str, float]] = []
    best: dict[str, Any] | None = None
    for repeat in range(env.scan_repeats):
        find_seconds, _ = time_find(small.root)
        stat_seconds, _ = time_find(small.root, "%s %T@\\n")
        spec = Spec("scan_noop", "ours", small, f"{env.base}/{short}-scan{repeat}", f"b{env.stamp}-{short}-scan{repeat}",
                    "NoOp", n, 0, verify=False)
        measured = measure(env, spec)
        seconds = (measured.get("seconds_until_all_discovered_from_run_start")
                   or measured.get("seconds_until_all_discovered") or measured["wall_seconds"])
        samples.append({"scan_seconds": seconds, "find_seconds": round(find_seconds, 4), "find_stat_seconds": round(stat_seconds, 4)})
        log(f"scan_noop sample {repeat + 1}: discovered in {seconds:.3f}s; find -type f {find_seconds:.3f}s, "
            f"find -printf {stat_seconds:.3f}s")
        if best is None or seconds < min(s["scan_seconds"] for s in samples[:-1]):
            best = measured
    entry["scan_samples"] = samples
    assert best is not None
    return best


def merge_results(results: dict[str, Any], other: dict[str, Any], source: str) -> None:
    """Fill each case's missing system from ``other`` (a run on the same generated tree, at another time).

    The two runs did not share a machine slot, so the speedup carries the load difference
    (``meta.merged``) -- the per-file counts do not depend on load. Catalogs are compared by digest.
    """
    if other["meta"]["files"] != results["meta"]["files"]:
        raise SystemExit(f"--merge {source}: {other['meta']['files']} files there, {results['meta']['files']} here")
    theirs = {entry["case"]: entry for entry in other["cases"]}
    merged = []
    for entry in results["cases"]:
        match = theirs.get(entry["case"])
        if match is None:
            continue
        for system in ("incumbent", "ours"):
            if system not in entry and system in match:
                entry[system] = match[system] | {"from_run": other["meta"]["stamp"]}
        if "incumbent" in entry and "ours" in entry:
            entry["speedup"] = round(entry["ours"]["files_per_second"] / entry["incumbent"]["files_per_second"], 2)
            a, b = entry["incumbent"].get("catalog_digest"), entry["ours"].get("catalog_digest")
            if a and b:
                if a != b:
                    raise AssertionError(f"{entry['case']}: the two systems' catalogs differ (digest)")
                entry["catalogs_identical"] = True
            merged.append(entry["case"])
    results["meta"]["merged"] = {"from": source, "stamp": other["meta"]["stamp"], "cases": merged,
                                 "their_load_before": other["meta"]["load_before"],
                                 "their_load_after": other["meta"]["load_after"]}


# ============================================================================ report
ROWS = [
    ("wall s", "wall_seconds", "{:.2f}"),
    ("files/s", "files_per_second", "{:,.0f}"),
    ("worker CPU ms/file", "worker_cpu_ms_per_file", "{:.3f}"),
    ("Redis cmds/file", "redis_commands_per_file", "{:.2f}"),
    ("Redis round trips/file", "redis_round_trips_per_file", "{:.2f}"),
    ("iRODS API calls/file", "irods_api_calls_per_file", "{:.2f}"),
    ("peak RSS/process MiB", "rss_peak_mib_per_process", "{:.1f}"),
    ("Redis B kept/synced file", "redis_bytes_kept_per_synced_file", "{:,.0f}"),
]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"# Benchmark {meta['stamp']}",
        "",
        f"{meta['files']} small files ({meta['directories']} directories), {meta['workers']} worker processes per system, "
        f"files_per_task {FILES_PER_TASK}, {meta['cpus']} CPUs (load before: {meta['load_before']}, "
        f"after: {meta.get('load_after')}; each case's own in the JSON). "
        "Catalogs verified for every number below.",
        *(["", f"The other system's numbers for {', '.join(meta['merged']['cases'])} come from run "
           f"{meta['merged']['stamp']} on the same generated tree (load before: {meta['merged']['their_load_before']}); "
           "catalogs compared by digest."] if meta.get("merged") else []),
        "",
        "| case | metric | incumbent | ours | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for entry in results["cases"]:
        case = entry["case"]
        for label, key, fmt in ROWS if ("ours" in entry or "incumbent" in entry) else ():
            inc = entry.get("incumbent", {}).get(key)
            our = entry.get("ours", {}).get(key)
            ratio = ""
            if key == "files_per_second" and "speedup" in entry:
                ratio = f"**{entry['speedup']:.2f}x**"
            lines.append(f"| {case} | {label} | {fmt.format(inc) if inc is not None else '-'} | "
                         f"{fmt.format(our) if our is not None else '-'} | {ratio} |")
        if "scan_fraction_of_find" in entry:
            lines.append(f"| {case} | scan+enqueue files/s vs find -type f | find {entry['find_files_per_second']:,.0f} | "
                         f"{entry['scan_enqueue_files_per_second']:,.0f} | {entry['scan_fraction_of_find']:.1%} |")
        if "scan_fraction_of_find_median" in entry:
            lines.append(f"| {case} | … median of {len(entry['scan_samples'])} samples, each vs the find just before it | | | "
                         f"{entry['scan_fraction_of_find_median']:.1%} |")
        if "scan_fraction_of_find_stat" in entry:
            lines.append(f"| {case} | scan+enqueue vs find -printf '%s %T@' (stats each file) | "
                         f"find {entry['find_stat_files_per_second']:,.0f} | {entry['scan_enqueue_files_per_second']:,.0f} | "
                         f"{entry['scan_fraction_of_find_stat']:.1%} |")
        lines += cases_more.markdown_rows(entry)
        ours = entry.get("ours", {})
        if ours.get("rss_curve_mib"):
            curve = [mib for _t, mib in ours["rss_curve_mib"]]
            tenth = max(1, len(curve) // 10)
            lines.append(f"| {case} | our RSS curve MiB (first 10 % / last 10 % of samples, max) | | "
                         f"{max(curve[:tenth]):.1f} / {max(curve[-tenth:]):.1f}, {max(curve):.1f} | |")
    return "\n".join(lines) + "\n"


# ============================================================================ main
def start_irods_server(scratch: Path, env: Env | None = None) -> tuple[subprocess.Popen[bytes], str, int, int]:
    log_path = scratch / "logs" / "irods-test-server.log"
    process = subprocess.Popen(
        [str(OUR_PYTHON), "-m", "irods_ingest", "test-server", "--port", "0", "--control-port", "0",
         "--data-dir", str(scratch / "irods")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=open(log_path, "wb"), start_new_session=True,  # noqa: SIM115
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r"listening on ([\d.]+):(\d+) control [\d.]+:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the iRODS test server did not start: {line!r} (log {log_path})")
    return process, match.group(1), int(match.group(2)), int(match.group(3))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=100_000, help="small files in the tree (default 100000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per system (default 2)")
    parser.add_argument("--cases", nargs="+", default=ALL_CASES, choices=ALL_CASES)
    parser.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    parser.add_argument("--ours-only", action="store_true", help="skip the incumbent (no virtualenv needed)")
    parser.add_argument("--incumbent-only", action="store_true",
                        help="run only the incumbent (e.g. a long 100 k run in the background; combine with --merge)")
    parser.add_argument("--merge", metavar="JSON", default=None,
                        help="take the other system's entries from an earlier run of the same --files tree (same seed): "
                             "speedups are computed against them, catalogs compared by digest")
    parser.add_argument("--empty-files", action="store_true",
                        help="every small file empty (the same tree shape; for the 1 M-file RSS run)")
    parser.add_argument("--sample-interval", type=float, default=1.0, help="RSS sampling interval, seconds (default 1)")
    parser.add_argument("--scan-repeats", type=int, default=3,
                        help="scan_noop samples, each after its own find timing; the best of each is compared (default 3)")
    parser.add_argument("--flat-files", type=int, default=100_000,
                        help="files in the one directory of flat_new/flat_changed (default 100000)")
    parser.add_argument("--huge-sizes", type=int, nargs="+", default=cases_more.DEFAULT_HUGE_SIZES,
                        help="huge_dir_scan: the directory's sizes, grown in turn (default 10000 100000 1000000)")
    parser.add_argument("--latency-ms", type=float, default=2.0, help="latency of the *_2ms cases and the curve (default 2)")
    parser.add_argument("--latency-files", type=int, default=20_000,
                        help="files of the *_2ms cases and the latency curve (default 20000)")
    parser.add_argument("--curve", nargs="+", default=cases_more.DEFAULT_CURVE,
                        help="latency_curve points, worker processes x threads per worker (default 1x1 1x2 2x2 2x4)")
    parser.add_argument("--large-files", type=int, default=4, help="files in the Put case (default 4)")
    parser.add_argument("--large-mib", type=int, default=24, help="MiB per large file (default 24)")
    parser.add_argument("--profile", action="store_true", help="run our workers under cProfile (.prof files in --out)")
    parser.add_argument("--scratch", default=None, help="scratch directory (default: a new one under bench/.scratch)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep datasets, logs and server data")
    parser.add_argument("--cache", default=str(CACHE_DIR), help="where the incumbent's virtualenv is kept")
    parser.add_argument("--render", metavar="JSON", default=None,
                        help="only re-render --out/latest.md from an earlier results file, and print it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        table = markdown(json.loads(Path(args.render).read_text()))
        (out / "latest.md").write_text(table)
        print(table)
        return 0
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if args.ours_only and args.incumbent_only:
        raise SystemExit("--ours-only and --incumbent-only exclude each other")
    systems = ["ours"] if args.ours_only else ["incumbent"] if args.incumbent_only else ["incumbent", "ours"]
    incumbent = None if args.ours_only else incumbent_venv(Path(args.cache))
    scratch_parent = HERE / ".scratch"
    scratch_parent.mkdir(exist_ok=True)
    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=scratch_parent))
    (scratch / "logs").mkdir(parents=True, exist_ok=True)
    (scratch / "home").mkdir(exist_ok=True)
    cases = plan_cases(args.cases)
    redis_server = RedisServer(data_dir=scratch / "redis")
    irods_process: subprocess.Popen[bytes] | None = None
    env: Env | None = None
    load_before = os.getloadavg()
    try:
        log(f"scratch {scratch}; generating {args.files} files")
        datasets: dict[str, Dataset] = {"small": make_small_tree(scratch / "data" / "tree", args.files, empty=args.empty_files)}
        if "flat_new" in cases:
            log(f"generating {args.flat_files} files in one directory")
            flat_root = scratch / "data" / "flat"
            datasets["flat"] = Dataset(flat_root, cases_more.make_flat_dir(flat_root, args.flat_files, _small_size,
                                                                            empty=args.empty_files))
        if {"register_new_2ms", "latency_curve"} & set(cases):
            datasets["latency_tree"] = make_small_tree(scratch / "data" / "tree2ms", args.latency_files, seed=23)
        if "flat_new_2ms" in cases:
            flat2 = scratch / "data" / "flat2ms"
            datasets["latency_flat"] = Dataset(flat2, cases_more.make_flat_dir(flat2, args.latency_files, _small_size, seed=29))
        if "put_large" in cases:
            datasets["large"] = make_large_files(scratch / "data" / "large", args.large_files, args.large_mib)
        find_seconds, find_count = time_find(datasets["small"].root)
        stat_seconds, _ = time_find(datasets["small"].root, printf="%s %T@\\n")
        datasets["find_rate"] = Dataset(Path("."), {"rate": int(find_count / max(find_seconds, 1e-9)),
                                                    "stat_rate": int(find_count / max(stat_seconds, 1e-9))})
        redis_server.start()
        irods_process, host, port, control_port = start_irods_server(scratch)
        env = Env(scratch, redis_server.url, host, port, ControlClient(host, control_port), incumbent, args.workers,
                  f"/{ZONE}/home/{USER}/bench-{stamp}", stamp, out if args.profile else None, args.sample_interval,
                  args.scan_repeats)
        env.service_pids = {"irods": irods_process.pid}
        if redis_server._process is not None:
            env.service_pids["redis"] = redis_server._process.pid
        with env.session() as session:
            session.collections.create(env.base)
        entries = []
        for case in cases:
            if case == "register_changed10":
                changed = change_fraction(datasets["small"], 0.10)
                datasets["changed_count"] = Dataset(Path("."), {"n": len(changed)})
            if case == "flat_changed":
                changed = change_fraction(datasets["flat"], 0.01)
                datasets["flat_changed_count"] = Dataset(Path("."), {"n": len(changed)})
            entries.append(run_case(env, case, datasets, systems, args))
        cases_more.summarize(entries)
        small = datasets["small"]
        results = {
            "meta": {
                "stamp": stamp, "files": len(small.files),
                "directories": sum(1 for _ in os.walk(small.root)),
                "bytes": sum(small.files.values()), "workers": args.workers, "files_per_task": FILES_PER_TASK,
                "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "find_seconds": round(find_seconds, 4), "find_files_per_second": datasets["find_rate"].files["rate"],
                "find_stat_seconds": round(stat_seconds, 4), "empty_files": args.empty_files,
                "flat_files": args.flat_files if "flat_new" in cases else None,
                "huge_sizes": args.huge_sizes if "huge_dir_scan" in cases else None,
                "latency_ms": args.latency_ms, "latency_files": args.latency_files, "curve": args.curve,
                "cases_run": cases,
                "incumbent": INCUMBENT_SPEC if incumbent else None, "systems": systems,
                "method": "see docs/performance.md",
            },
            "cases": entries,
        }
        if args.merge:
            merge_results(results, json.loads(Path(args.merge).read_text()), Path(args.merge).name)
        (out / f"{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
        table = markdown(results)
        (out / "latest.md").write_text(table)
        print(table)
        log(f"wrote {out / (stamp + '.json')} and {out / 'latest.md'}")
        return 0
    finally:
        if env is not None:
            stop_processes(env.spawned, timeout=10)
        if irods_process is not None:
            stop_processes([irods_process], timeout=10)
        redis_server.stop()
        if not args.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
