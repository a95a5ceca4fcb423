"""Fixtures for the helm binary (installed by ``scripts/install-helm.sh``).

``helm`` runs with its cache, config and data homes in a per-session temporary directory,
so tests never read or write the developer's helm state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from testsupport.require import service_unavailable
from testsupport.toolcache import helm_path

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CHART_DIR: Final = REPO_ROOT / "charts" / "irods-ingest-operator"
INSTALL_FIX: Final = "run scripts/install-helm.sh"


@dataclass(frozen=True)
class Helm:
    """Runs ``helm`` with an isolated environment."""

    binary: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        environment = dict(self.env)
        if kubeconfig is not None:
            environment["KUBECONFIG"] = str(kubeconfig)
        result = subprocess.run(
            [str(self.binary), *args], env=environment, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited with {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


def _find_helm() -> Path | None:
    for candidate in (helm_path(), shutil.which("helm")):
        if candidate is None:
            continue
        path = Path(candidate)
        if os.access(path, os.X_OK):
            probe = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.startswith("v4."):
                return path
    return None


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """Path of a helm 4.x binary: the project's cache first, then ``PATH``."""
    path = _find_helm()
    if path is None:
        service_unavailable("helm", f"no helm 4.x at {helm_path()} or on PATH", INSTALL_FIX)
    return path


@pytest.fixture(scope="session")
def helm(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        # No ambient cluster: a command that needs one must be given a kubeconfig.
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return Helm(binary=helm_binary, env=env)


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    return CHART_DIR
