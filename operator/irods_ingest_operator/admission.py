"""The cluster admin's limits on what a SyncJob author may ask of a worker pod (pure).

A SyncJob author chooses the source volume and may choose the worker image; the operator
turns both into a pod that holds the job's iRODS and Redis credentials. Left open, that is
a privilege escalation: a ``hostPath`` of ``/`` or of the kubelet's directories, a
projected service-account token, another team's Secret, or an image of the author's own
making that runs with those credentials. So the admin (chart values, operator settings)
lists the volume kinds and image repositories allowed; anything else makes the SyncJob
``Stalled`` with the field named, before any pod exists.

What the author can never choose is fixed here too: the pod's user and group, a size limit
on its scratch space, and default resources (see :class:`WorkerPodPolicy`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from irods_ingest_operator.spec import PathSource, SpecProblem, SyncJobSpec

DEFAULT_ALLOWED_VOLUME_TYPES: Final = ("persistentVolumeClaim", "nfs", "csi")
DEFAULT_WORKER_UID: Final = 10001  # the worker image's USER (images/worker.Dockerfile)
DEFAULT_WORKER_GID: Final = 10001
DEFAULT_TMP_SIZE: Final = "1Gi"
DEFAULT_WORKER_RESOURCES: Final[Mapping[str, Mapping[str, str]]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "2Gi"},
}


@dataclass(frozen=True)
class WorkerPodPolicy:
    """What every worker pod gets, whatever its SyncJob says."""

    run_as_user: int = DEFAULT_WORKER_UID
    run_as_group: int = DEFAULT_WORKER_GID
    # None by default: with an fsGroup the kubelet changes the group of every file of a volume
    # that supports ownership management -- the user's source data -- when it mounts it.
    fs_group: int | None = None
    tmp_size: str = DEFAULT_TMP_SIZE
    default_resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: DEFAULT_WORKER_RESOURCES)

    def resources(self, requested: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The defaults with the SyncJob's own requests/limits laid over them, key by key."""
        merged: dict[str, dict[str, Any]] = {kind: dict(values) for kind, values in self.default_resources.items()}
        for kind, values in (requested or {}).items():
            if isinstance(values, Mapping):
                merged.setdefault(str(kind), {}).update({str(k): v for k, v in values.items()})
        # A request above its limit is refused by the API server: a SyncJob that lowers a
        # limit below our default request gets the request lowered with it.
        limits, requests = merged.get("limits", {}), merged.get("requests", {})
        for name, limit in limits.items():
            if name in requests and name not in (requested or {}).get("requests", {}) and _quantity(requests[name]) > _quantity(limit):
                requests[name] = limit
        return {kind: values for kind, values in merged.items() if values}


@dataclass(frozen=True)
class AdmissionPolicy:
    allowed_volume_types: frozenset[str] = frozenset(DEFAULT_ALLOWED_VOLUME_TYPES)
    # Image repositories: exact ("ghcr.io/org/worker"), a prefix ending in "*", or "*" for any.
    allowed_images: tuple[str, ...] = ()

    def problems(self, spec: SyncJobSpec) -> list[SpecProblem]:
        found: list[SpecProblem] = []
        source = spec.source
        if isinstance(source, PathSource) and source.volume is not None:
            kinds = sorted(source.volume)
            refused = [k for k in kinds if k not in self.allowed_volume_types]
            if refused:
                allowed = ", ".join(sorted(self.allowed_volume_types)) or "none"
                found.append(SpecProblem(
                    "spec.source.volume",
                    f"volume type {', '.join(refused)} is not allowed on this cluster (allowed: {allowed})",
                    "mount the data through an allowed type, e.g. a PersistentVolumeClaim, or ask the cluster "
                    "admin to allow it (chart value workers.allowedVolumeTypes)",
                ))
        if spec.workers.image and not self.image_allowed(spec.workers.image):
            found.append(SpecProblem(
                "spec.workers.image",
                f"image {spec.workers.image!r} is not from an allowed repository ({', '.join(self.allowed_images) or 'none'})",
                "leave spec.workers.image unset to use the cluster's worker image, or ask the cluster admin to "
                "allow the repository (chart value workers.allowedImages)",
            ))
        return found

    def image_allowed(self, image: str) -> bool:
        repository = image_repository(image)
        for pattern in self.allowed_images:
            if pattern == "*" or repository == pattern:
                return True
            if pattern.endswith("*") and repository.startswith(pattern[:-1]):
                return True
        return False


def image_repository(image: str) -> str:
    """``registry/path/name`` of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_SUFFIXES: Final = {
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
    "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 0.001,
}  # fmt: skip


def _quantity(value: object) -> float:
    """A Kubernetes quantity as a number (enough to compare a request with a limit)."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except ValueError:
                return float("inf")
    try:
        return float(text)
    except ValueError:
        return float("inf")


def valid_quantity(value: str) -> bool:
    return _quantity(value) != float("inf")


def check_resources(resources: Mapping[str, Any]) -> Sequence[str]:
    """Problems with a resources mapping given by the admin (settings)."""
    problems = []
    for kind, values in resources.items():
        if kind not in ("requests", "limits") or not isinstance(values, Mapping):
            problems.append(f"{kind!r}: use requests and limits, each a mapping")
            continue
        for name, quantity in values.items():
            if not valid_quantity(str(quantity)):
                problems.append(f"{kind}.{name}: {quantity!r} is not a quantity")
    return problems
