"""A tiny run of the benchmark harness (bench/run.py), so that it keeps working.

Not a timed test: it checks that the harness runs both systems, verifies their catalogs
and writes results with the expected keys. The incumbent's virtualenv is created on first
use (about 30 s from the registry) and cached under ~/.cache/irods-ingest-operator/bench;
set ``IRODS_INGEST_BENCH_OURS_ONLY=1`` where the registry is unreachable to run the engine
alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "bench" / "run.py"

CASE_KEYS = {
    "wall_seconds", "files_per_second", "worker_cpu_ms_per_file", "redis_commands_per_file",
    "redis_round_trips_per_file", "irods_api_calls_per_file", "rss_peak_mib_per_process",
    "redis_bytes_kept_per_synced_file", "catalog_verified", "rss_curve_mib", "irods_api_calls",
}


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.irods
@pytest.mark.timeout(300)
def test_harness_runs_verifies_and_writes_results(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    ours_only = os.environ.get("IRODS_INGEST_BENCH_OURS_ONLY") == "1"
    out = tmp_path / "results"
    command = [sys.executable, str(HARNESS), "--files", "60", "--workers", "2", "--cases", "register_new", "scan_noop",
               "--scan-repeats", "2", "--out", str(out)]
    if ours_only:
        command.append("--ours-only")
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stderr[-4000:]

    results = list(out.glob("*.json"))
    assert len(results) == 1
    data = json.loads(results[0].read_text())
    assert data["meta"]["files"] == 60
    entry, scan = data["cases"]
    assert entry["case"] == "register_new"
    systems = ["ours"] if ours_only else ["incumbent", "ours"]
    for system in systems:
        metrics = entry[system]
        assert set(metrics) >= CASE_KEYS, CASE_KEYS - set(metrics)
        assert metrics["catalog_verified"] is True
        assert metrics["files"] == 60
        assert metrics["files_per_second"] > 0
        assert metrics["irods_api_calls_per_file"] > 0  # the register calls reached the test server
    assert entry["ours"]["engine_counters"]["files_synced"] == 60
    if not ours_only:
        assert entry["catalogs_identical"] is True
        assert entry["speedup"] == pytest.approx(
            entry["ours"]["files_per_second"] / entry["incumbent"]["files_per_second"], rel=0.02)
    # scan_noop: ours only, sampled twice (each after its own find timing), discovery timed
    assert scan["case"] == "scan_noop" and "incumbent" not in scan
    assert [set(sample) for sample in scan["scan_samples"]] == [{"scan_seconds", "find_seconds", "find_stat_seconds"}] * 2
    assert scan["ours"]["engine_counters"]["files_discovered"] == 60
    assert scan["ours"]["redis_commands_in_lua"] is None  # no MONITOR in this case
    assert scan["scan_fraction_of_find"] > 0 and scan["scan_fraction_of_find_median"] > 0
    assert scan["scan_enqueue_files_per_second"] == pytest.approx(60 / min(s["scan_seconds"] for s in scan["scan_samples"]), rel=0.01)
    table = (out / "latest.md").read_text()
    assert "| register_new | files/s |" in table and "| scan_noop | scan+enqueue files/s vs find -type f |" in table
    # The harness leaves no scratch behind.
    assert not any((REPO / "bench" / ".scratch").glob(f"{data['meta']['stamp']}-*"))



def _harness() -> Any:
    """bench/run.py as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # As when run as a script: its sibling modules (cases_more.py) are importable.
    if str(HARNESS.parent) not in sys.path:
        sys.path.insert(0, str(HARNESS.parent))
    sys.modules["bench_run"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _results(stamp: str, system: str, files_per_second: float, digest: str, files: int = 100) -> dict[str, Any]:
    return {
        "meta": {"stamp": stamp, "files": files, "load_before": [1.0], "load_after": [2.0], "directories": 1,
                 "workers": 2, "cpus": 2},
        "cases": [{"case": "register_new", system: {"files_per_second": files_per_second, "catalog_digest": digest}}],
    }


def test_merge_takes_the_other_systems_run_and_compares_catalogs_by_digest() -> None:
    harness = _harness()
    ours = _results("B", "ours", 900.0, "d1")
    harness.merge_results(ours, _results("A", "incumbent", 60.0, "d1"), "A.json")
    entry: dict[str, Any] = ours["cases"][0]
    assert entry["speedup"] == 15.0
    assert entry["catalogs_identical"] is True
    assert entry["incumbent"]["from_run"] == "A"
    assert ours["meta"]["merged"]["cases"] == ["register_new"]
    assert "come from run A" in harness.markdown(ours)

    differing = _results("C", "ours", 900.0, "d2")
    with pytest.raises(AssertionError, match="catalogs differ"):
        harness.merge_results(differing, _results("A", "incumbent", 60.0, "d1"), "A.json")
    with pytest.raises(SystemExit, match="100 files there, 5 here"):
        harness.merge_results(_results("D", "ours", 900.0, "d1", files=5), _results("A", "incumbent", 60.0, "d1"), "A.json")


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.irods
@pytest.mark.timeout(300)
def test_flat_huge_and_latency_cases_run_and_verify(tmp_path: Path) -> None:
    """The cases of issue 18 at toy sizes: one flat directory (new, then 1 % changed), a
    growing huge directory, the 2 ms latency case and the connections curve."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    out = tmp_path / "results"
    command = [sys.executable, str(HARNESS), "--files", "80", "--workers", "2", "--flat-files", "80",
               "--huge-sizes", "50", "150", "--latency-files", "40", "--latency-ms", "2", "--curve", "1x1", "1x2",
               "--cases", "register_new", "flat_new", "flat_changed", "huge_dir_scan", "flat_new_2ms", "latency_curve",
               "--ours-only", "--scan-repeats", "1", "--out", str(out)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stderr[-4000:]
    data = json.loads(next(out.glob("*.json")).read_text())
    by_case = {entry["case"]: entry for entry in data["cases"]}
    assert list(by_case) == ["register_new", "flat_new", "flat_changed", "huge_dir_scan", "flat_new_2ms", "latency_curve"]
    flat = by_case["flat_new"]["ours"]
    assert flat["catalog_verified"] is True and flat["engine_counters"]["files_synced"] == 80
    # flat_vs_nested: the same file count on both shapes, in the same run
    assert by_case["flat_new"]["flat_vs_nested"] == pytest.approx(
        flat["files_per_second"] / by_case["register_new"]["ours"]["files_per_second"], rel=0.01)
    changed = by_case["flat_changed"]["ours"]
    assert changed["catalog_verified"] is True and changed["files_synced_expected"] == 1  # 1 % of 80, at least one
    huge = by_case["huge_dir_scan"]
    assert [p["files"] for p in huge["points"]] == [50, 150]
    assert all(p["fraction_of_find"] > 0 and p["rss_peak_mib_per_process"] > 0 for p in huge["points"])
    slow = by_case["flat_new_2ms"]["ours"]
    assert slow["latency_ms"] == 2 and slow["catalog_verified"] is True
    curve = by_case["latency_curve"]["points"]
    assert [(p["processes"], p["threads"]) for p in curve] == [(1, 1), (1, 2)]
    assert curve[0]["efficiency"] == 1.0 and all(p["files_per_second"] > 0 for p in curve)
    table = (out / "latest.md").read_text()
    assert "| flat_new | ours flat ÷ ours nested" in table and "| latency_curve | 1x2 (2 connections)" in table
