"""The incumbent (irods-capability-automated-ingest 0.7.0) in a cached virtualenv of its own.

Shared by the benchmark (``bench/run.py``) and the differential compatibility suite
(``tests/compat``): both run its celery workers and ``irods_sync`` against our redis-server
and iRODS test server. Created once from the package registry, reused while its marker
names the same pinned requirements.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

INCUMBENT_SPEC = ["irods-capability-automated-ingest==0.7.0", "kombu==5.4.2"]
CACHE_DIR = Path(os.environ.get("IRODS_INGEST_BENCH_CACHE", Path.home() / ".cache" / "irods-ingest-operator" / "bench"))


def incumbent_venv(cache: Path = CACHE_DIR, log: Callable[[str], None] | None = None) -> Path:
    """The incumbent's virtualenv under ``cache`` (created once, reused when its marker matches)."""
    venv = cache / "incumbent-venv"
    marker = venv / ".bench-ready"
    wanted = " ".join(INCUMBENT_SPEC)
    if marker.exists() and marker.read_text().strip() == wanted:
        return venv
    if log is not None:
        log(f"creating the incumbent's virtualenv in {venv} ({wanted})")
    cache.mkdir(parents=True, exist_ok=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *INCUMBENT_SPEC], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker.write_text(wanted + "\n")
    return venv


def base_python() -> str:
    """A python outside our venv (a venv made from a venv's python still works, but be explicit)."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(candidate) if candidate.exists() else sys.executable
