"""The CLI as users run it: separate processes, a real Redis and the iRODS test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.irods_fixtures import IrodsEnv

pytestmark = [pytest.mark.redis, pytest.mark.irods]


def cli_env(redis_url: str, irods_env: IrodsEnv) -> dict[str, str]:
    return {
        **os.environ,
        "IRODS_INGEST_REDIS_URL": redis_url,
        "IRODS_HOST": irods_env.host,
        "IRODS_PORT": str(irods_env.port),
        "IRODS_USER_NAME": irods_env.user,
        "IRODS_ZONE_NAME": irods_env.zone,
        "IRODS_PASSWORD": irods_env.password,
    }


def irods_ingest(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "irods_ingest", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_start_synchronous_with_workers_then_failures_list_and_watch(
    redis_url: str, irods_env: IrodsEnv, irods_session, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    source = tmp_path / "src"
    for i in range(30):
        (source / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (source / f"d{i % 4}" / f"f{i}.bin").write_bytes(os.urandom(1000 + i))
    os.mkfifo(source / "fifo")
    target = f"{irods_env.home}/cli_{os.getpid()}"
    env = cli_env(redis_url, irods_env)
    done = irods_ingest("start", str(source), target, "--job-name", "cli-e2e", "--operation", "PutSync",
                        "--workers", "2", "--progress", "--files_per_task", "7", env=env)
    assert done.returncode == 0, done.stderr
    assert "files/s" in done.stderr and "31/31 files 100%" in done.stderr  # the progress bar, in files
    assert "synced 30" in done.stderr and "skipped 1" in done.stderr
    session = irods_session()
    names = {o.name for _c, _s, objs in session.collections.get(target).walk() for o in objs}
    assert names == {f"f{i}.bin" for i in range(30)}

    failures = irods_ingest("failures", "cli-e2e", "--format", "json", env=env)
    records = json.loads(failures.stdout)
    assert [(r["outcome"], Path(r["path"]).name) for r in records] == [("skipped", "fifo")]

    listed = json.loads(irods_ingest("list", "--format", "json", env=env).stdout)
    job = next(j for j in listed if j["job"] == "cli-e2e")
    assert (job["state"], job["files_synced"], job["history"][0]["state"]) == ("done", 30, "done")

    watched = irods_ingest("watch", "cli-e2e", env=env)
    assert watched.returncode == 0 and "done" in watched.stderr

    # A failing run exits non-zero: an unknown resource fails every file.
    (source / "d0" / "new.bin").write_bytes(b"new")
    failing = irods_ingest("start", str(source), target, "--job-name", "cli-e2e", "--operation", "PutSync",
                           "--resource", "noSuchResc", "--workers", "1", env=env)
    assert failing.returncode == 1 and "failed" in failing.stderr
    session.collections.remove(target, recurse=True, force=True)


def test_demo_runs_on_embedded_defaults(tmp_path: Path) -> None:
    """The README's main-job command: a private Redis, the iRODS test server, a sample tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IRODS_", "IRODS_INGEST_"))}
    result = subprocess.run([sys.executable, "-m", "irods_ingest", "demo", "--files", "60"], env=env,
                            capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "synced 60" in result.stderr
    assert "in iRODS under /tempZone/home/rods/demo: 60 data objects" in result.stdout
    # it cleaned up: no redis-server or test server left behind by this demo
    leftovers = subprocess.run(["pgrep", "-f", "irods-ingest-demo-"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""


def scrape(port: int) -> dict[str, float]:
    """The samples of a /metrics endpoint, keyed by 'name{labels}'."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def test_worker_metrics_endpoint(redis_url: str, irods_env: IrodsEnv, irods_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from irods_ingest_testkit.processes import free_port, stop_process, wait_until

    source = tmp_path / "src"
    source.mkdir()
    for i in range(12):
        (source / f"f{i}").write_bytes(b"x" * 100)
    (source / "skip.tmp").write_bytes(b"t")
    target = f"{irods_env.home}/metrics_{os.getpid()}"
    env = cli_env(redis_url, irods_env)
    started = irods_ingest("start", str(source), target, "--job-name", "metrics", "--operation", "Put",
                           "--exclude-file-name", r".*\.tmp", env=env)
    assert started.returncode == 0, started.stderr
    port = free_port()
    worker = subprocess.Popen([sys.executable, "-m", "irods_ingest", "worker", "--job", "metrics", "--metrics-port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def finished() -> bool:
            try:
                return scrape(port).get('irods_ingest_tasks_total{job="metrics",kind="finalize",result="done"}', 0) >= 1
            except OSError:
                return False

        wait_until(finished, timeout=60, what="the run's FINALIZE task in the worker's metrics")
        samples = scrape(port)
    finally:
        stop_process(worker)
    assert samples['irods_ingest_files_total{job="metrics",operation="Put",result="synced"}'] == 12
    assert samples['irods_ingest_files_total{job="metrics",operation="Put",result="excluded"}'] == 1
    assert samples['irods_ingest_bytes_total{job="metrics",operation="Put",result="synced"}'] == 1200
    assert samples['irods_ingest_task_duration_seconds_count{job="metrics",kind="files"}'] >= 1
    assert samples['irods_ingest_irods_call_duration_seconds_count{call="uploading"}'] == 12
    assert samples["irods_ingest_claim_wait_seconds_count"] >= 3
    assert not any(str(source) in key for key in samples)  # paths never become labels
    irods_session().collections.remove(target, recurse=True, force=True)


def test_retry_redoes_only_the_failed_files(redis_url: str, irods_env: IrodsEnv, irods_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "src"
    for i in range(8):
        (source / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (source / f"d{i % 2}" / f"f{i}.txt").write_text(f"file {i}")
    marker = tmp_path / "refuse"
    marker.write_text("while this exists, f3 and f6 are refused")
    handler = tmp_path / "handler.py"
    handler.write_text(
        "import os\nfrom irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        f"        if os.path.exists({str(marker)!r}) and meta['path'].endswith(('f3.txt', 'f6.txt')):\n"
        "            raise RuntimeError('refused for now')\n"
    )
    target = f"{irods_env.home}/retry_{os.getpid()}"
    env = cli_env(redis_url, irods_env)
    first = irods_ingest("start", str(source), target, "--job-name", "retry-job", "--operation", "Put",
                         "--event-handler", str(handler), "--workers", "1", env=env)
    assert first.returncode == 1 and "synced 6" in first.stderr and "failed 2" in first.stderr
    marker.unlink()
    retried = irods_ingest("retry", "retry-job", "--workers", "1", env=env)
    assert retried.returncode == 0, retried.stderr
    assert "discovered 2, synced 2" in retried.stderr  # only the two failed files, no rescan
    names = {o.name for _c, _s, objs in irods_session().collections.get(target).walk() for o in objs}
    assert names == {f"f{i}.txt" for i in range(8)}
    again = irods_ingest("retry", "retry-job", env=env)
    assert again.returncode == 0 and "nothing to retry" in again.stderr
    irods_session().collections.remove(target, recurse=True, force=True)
