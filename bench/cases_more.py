"""The benchmark cases of issue 18, beside bench/run.py's own: flat directories and latency.

- ``flat_new``: N files in ONE directory (the nested tree's size distribution), first
  RegisterSync, both systems; ``flat_vs_nested`` compares our rate with ``register_new`` on
  the nested tree of the same file count (same run);
- ``flat_changed``: 1 % of those files appended to, then a rescan, both systems;
- ``huge_dir_scan``: ours, NoOp over one directory of empty files grown through the sizes of
  ``--huge-sizes`` (default 10 000, 100 000, 1 000 000): at each size every file's discovery
  is timed against ``find DIR -type f`` just before it, and the peak RSS of each worker
  process is kept -- flat RSS means no growth with the directory's size;
- ``register_new_2ms`` / ``flat_new_2ms``: the nested tree / one flat directory of
  ``--latency-files`` files with the iRODS test server holding every API reply back
  ``--latency-ms`` (default 2), both systems, the same worker processes and threads;
- ``latency_curve``: ours, the nested tree of ``--latency-files`` at ``--latency-ms``, for
  each ``PxT`` of ``--curve`` (worker processes x threads per worker, each thread with its
  own iRODS connection): files/s and its efficiency against the 1x1 rate times P x T.

run.py calls :func:`run_case` with itself (``harness``: the script's module, for ``Spec``,
``Dataset``, ``measure``, ``time_find``, ``log``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES = ["flat_new", "flat_changed", "huge_dir_scan", "register_new_2ms", "flat_new_2ms", "latency_curve"]
NEEDS = {"flat_changed": "flat_new"}
DEFAULT_HUGE_SIZES = [10_000, 100_000, 1_000_000]
DEFAULT_CURVE = ["1x1", "1x2", "2x2", "2x4"]


def make_flat_dir(root: Path, count: int, small_size: Callable[[random.Random], int], *, seed: int = 17,
                  empty: bool = False) -> dict[str, int]:
    """``count`` files in one directory, named and sized as the nested tree's (5 % with a space)."""
    rng = random.Random(seed)
    blob = rng.randbytes(1 << 20)
    root.mkdir(parents=True, exist_ok=True)
    made: dict[str, int] = {}
    for i in range(count):
        ext = rng.choice([".dat", ".csv", ".txt", ".tif", ".json", ""])
        name = f"file {i:07d}{ext}" if rng.random() < 0.05 else f"f_{i:07d}{ext}"
        size = 0 if empty else small_size(rng)
        if size:
            with open(root / name, "wb") as handle:
                handle.write(blob[:size])
        else:
            os.close(os.open(root / name, os.O_CREAT | os.O_WRONLY, 0o644))
        made[name] = size
    return made


def grow_empty_dir(root: Path, have: int, want: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(have, want):
        os.close(os.open(root / f"e_{i:08d}", os.O_CREAT | os.O_WRONLY, 0o644))


def parse_curve(points: list[str]) -> list[tuple[int, int]]:
    parsed = []
    for point in points:
        processes, _, threads = point.lower().partition("x")
        parsed.append((int(processes), int(threads or 1)))
    return parsed


def run_case(env: Any, case: str, datasets: dict[str, Any], systems: list[str], options: Any, harness: Any) -> dict[str, Any]:
    Spec, measure = harness.Spec, harness.measure
    entry: dict[str, Any] = {"case": case, "load_before": [round(x, 2) for x in os.getloadavg()]}
    if case == "huge_dir_scan":
        return _huge_dir_scan(env, entry, options, harness)
    if case == "latency_curve":
        return _latency_curve(env, entry, datasets["latency_tree"], options, harness)
    for system in systems:
        short = "inc" if system == "incumbent" else "ours"
        job = f"b{env.stamp}-{short}-{case.removesuffix('_2ms').replace('_new', '').replace('_changed', '')}"
        if case == "flat_new":
            flat = datasets["flat"]
            spec = Spec(case, system, flat, f"{env.base}/{short}-flat", job, "RegisterSync", len(flat.files), len(flat.files))
        elif case == "flat_changed":
            flat = datasets["flat"]
            spec = Spec(case, system, flat, f"{env.base}/{short}-flat", job, "RegisterSync", len(flat.files),
                        int(datasets["flat_changed_count"].files["n"]))
        else:  # register_new_2ms, flat_new_2ms
            source = datasets["latency_tree" if case == "register_new_2ms" else "latency_flat"]
            spec = Spec(case, system, source, f"{env.base}/{short}-{case}", job + "-2ms", "RegisterSync",
                        len(source.files), len(source.files), latency_ms=options.latency_ms)
        if system == "incumbent":
            spec.job += f"-{case}"
        entry[system] = measure(env, spec)
    return entry


def _huge_dir_scan(env: Any, entry: dict[str, Any], options: Any, harness: Any) -> dict[str, Any]:
    Dataset, Spec, log, time_find, measure = harness.Dataset, harness.Spec, harness.log, harness.time_find, harness.measure
    root = env.scratch / "data" / "huge" / "d"
    have = 0
    points = []
    last: dict[str, Any] = {}
    for size in sorted(options.huge_sizes):
        started = time.monotonic()
        grow_empty_dir(root, have, size)
        have = size
        log(f"huge_dir_scan: {size} empty files in one directory ({time.monotonic() - started:.0f}s to create)")
        find_seconds, found = time_find(root)
        assert found == size, (found, size)
        spec = Spec("huge_dir_scan", "ours", Dataset(root, {}), f"{env.base}/ours-huge{size}", f"b{env.stamp}-huge{size}",
                    "NoOp", size, 0, verify=False, discovery=True)
        last = measure(env, spec)
        seconds = (last.get("seconds_until_all_discovered_from_run_start")
                   or last.get("seconds_until_all_discovered") or last["wall_seconds"])
        points.append({
            "files": size, "scan_seconds": round(seconds, 3), "find_seconds": round(find_seconds, 3),
            "scan_files_per_second": round(size / seconds, 1), "find_files_per_second": round(size / find_seconds, 1),
            "fraction_of_find": round(find_seconds / seconds, 4),
            "rss_peak_mib_per_process": last["rss_peak_mib_per_process"],
            "wall_seconds": last["wall_seconds"], "load_before": last["load_before"],
        })
        log(f"huge_dir_scan {size}: discovered in {seconds:.2f}s vs find {find_seconds:.2f}s "
            f"({find_seconds / seconds:.0%}); peak RSS/process {last['rss_peak_mib_per_process']} MiB")
    entry["ours"] = last
    entry["points"] = points
    entry["rss_growth_mib"] = round(points[-1]["rss_peak_mib_per_process"] - points[0]["rss_peak_mib_per_process"], 1)
    return entry


def _latency_curve(env: Any, entry: dict[str, Any], tree: Any, options: Any, harness: Any) -> dict[str, Any]:
    Spec, measure = harness.Spec, harness.measure
    points = []
    for processes, threads in parse_curve(options.curve):
        tag = f"{processes}x{threads}"
        spec = Spec("latency_curve", "ours", tree, f"{env.base}/ours-curve{tag}", f"b{env.stamp}-curve{tag}",
                    "RegisterSync", len(tree.files), len(tree.files), processes=processes, concurrency=threads,
                    latency_ms=options.latency_ms)
        measured = measure(env, spec)
        points.append({"processes": processes, "threads": threads, "connections": processes * threads,
                       "files_per_second": measured["files_per_second"],
                       "irods_api_calls_per_file": measured["irods_api_calls_per_file"],
                       "worker_cpu_ms_per_file": measured["worker_cpu_ms_per_file"],
                       "irods_server_cpu_ms_per_file": measured.get("irods_cpu_ms_per_file"),
                       "redis_cpu_ms_per_file": measured.get("redis_cpu_ms_per_file"),
                       "load_before": measured["load_before"]})
    base = next((p["files_per_second"] for p in points if p["connections"] == 1), None)
    for point in points:
        point["efficiency"] = round(point["files_per_second"] / (base * point["connections"]), 3) if base else None
    entry["latency_ms"] = options.latency_ms
    entry["points"] = points
    return entry


def summarize(entries: list[dict[str, Any]]) -> None:
    """Cross-case ratios: flat_new against register_new on the nested tree of the same size."""
    by_case = {e["case"]: e for e in entries}
    flat, nested = by_case.get("flat_new", {}).get("ours"), by_case.get("register_new", {}).get("ours")
    if flat and nested and flat["files"] == nested["files"]:
        by_case["flat_new"]["flat_vs_nested"] = round(flat["files_per_second"] / nested["files_per_second"], 3)


def markdown_rows(entry: dict[str, Any]) -> list[str]:
    """Extra table rows for the cases of this module."""
    case, rows = entry["case"], []
    if "flat_vs_nested" in entry:
        rows.append(f"| {case} | ours flat ÷ ours nested (register_new), same file count | | | {entry['flat_vs_nested']:.0%} |")
    for point in entry.get("points", []):
        if case == "huge_dir_scan":
            rows.append(f"| {case} | {point['files']:,} files: scan+enqueue files/s vs find -type f; peak RSS/process MiB | "
                        f"find {point['find_files_per_second']:,.0f} | {point['scan_files_per_second']:,.0f}; "
                        f"{point['rss_peak_mib_per_process']:.1f} | {point['fraction_of_find']:.0%} |")
        elif case == "latency_curve":
            rows.append(f"| {case} | {point['processes']}x{point['threads']} ({point['connections']} connections) files/s "
                        f"at {entry['latency_ms']:g} ms | | {point['files_per_second']:,.0f} | "
                        f"{point['efficiency']:.0%} of linear |" if point["efficiency"] is not None else "")
    return [r for r in rows if r]
