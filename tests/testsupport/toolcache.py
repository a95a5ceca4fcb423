"""Where the test platform's built or downloaded tools live.

``scripts/build-control-plane.sh`` and ``scripts/install-helm.sh`` fill this cache; the
fixtures only read it. ``IRODS_INGEST_CACHE`` moves it (CI caches that folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

KUBERNETES_VERSION: Final = "1.20.2"


def cache_root() -> Path:
    configured = os.environ.get("IRODS_INGEST_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "irods-ingest-operator"


def control_plane_bin_dir() -> Path:
    """Holds ``kube-apiserver`` and ``kube-controller-manager``."""
    return cache_root() / f"k8s-v{KUBERNETES_VERSION}" / "bin"


def helm_path() -> Path:
    return cache_root() / "bin" / "helm"
