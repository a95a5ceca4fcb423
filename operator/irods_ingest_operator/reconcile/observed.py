"""Everything one reconcile pass knows, gathered before anything is decided (pure data).

:func:`~irods_ingest_operator.reconcile.observe.observe` fills it; :func:`~irods_ingest_operator.reconcile.decide.decide`
reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from irods_ingest.actions import RunStatus
from irods_ingest.config import JobConfig
from irods_ingest.errors import ConfigError
from irods_ingest.failures import FailureRecord
from irods_ingest_operator.builders.scaling import ScaleRecommendation
from irods_ingest_operator.refs import DeploymentState, JobRef, PodFacts
from irods_ingest_operator.spec import SpecProblem, SyncJobSpec


@dataclass(frozen=True)
class CredentialFacts:
    """A job's worker Redis user, as the operator keeps it (perJob mode): digests, never a password."""

    version: int
    digests: tuple[str, ...]
    rotated: float  # when the current password was made (epoch seconds)
    tag: str  # changes with every rotation; annotates the pod template
    user_exists: bool  # Redis still knows the user (it forgets ACL users on a restart without an aclfile)


@dataclass(frozen=True)
class Observed:
    """One SyncJob as the pass found it.

    The facts that can stop a pass (an invalid spec, a refused one, a missing or broken
    handler, a name taken by another) come first; once one is found, the pass reads only what
    a stalled job needs (its run, if Redis answers, and its Deployment).
    """

    job: JobRef
    generation: int
    created: datetime | None  # metadata.creationTimestamp
    old_status: Mapping[str, Any] = field(default_factory=dict)
    # --- the spec, and each reason it cannot run
    spec: SyncJobSpec | None = None
    spec_problems: tuple[SpecProblem, ...] = ()  # parsing (InvalidSpec)
    refused: tuple[SpecProblem, ...] = ()  # the admin's limits (NotAllowed)
    handler_missing: str | None = None  # the handler's ConfigMap or key is absent (HandlerNotFound)
    config: JobConfig | None = None  # prepared: checked, the handler stored by its content hash
    config_error: ConfigError | None = None  # the engine refused the config or the handler's syntax
    secret_conflict: str | None = None  # the credential Secret's name is another's (found by writing it)
    # --- the world
    deployment: DeploymentState | None = None  # the worker Deployment, whoever controls it
    pods: tuple[PodFacts, ...] = ()  # its pods, read only while workers are wanted and none is ready
    pods_error: str = ""  # why they could not be read (say, no RBAC for pods)
    credential: CredentialFacts | None = None  # None: shared worker credentials
    run: RunStatus | None = None  # None: unknown (Redis did not answer a stalled job's pass)
    memo: Mapping[str, str] = field(default_factory=dict)  # the operator's notes (constants.MEMO_*)
    failures: tuple[FailureRecord, ...] = ()  # the run's latest failure records, newest first
    failure_count: int = 0  # how many records the run holds
    # The records for the failures ConfigMap (newest first, bounded): read only when what it
    # shows changed (builders.failures.failures_signature), None otherwise.
    all_failures: tuple[FailureRecord, ...] | None = None
    running_config: JobConfig | None = None  # the config the active run started with (edits pending)
    history: tuple[Mapping[str, Any], ...] = ()  # summaries of finished runs, newest first
    scale_history: tuple[ScaleRecommendation, ...] = ()  # the stabilisation window's memory
    posted: Mapping[str, str] = field(default_factory=dict)  # the cause of the last Event per topic (memory)
    # --- this pass so far
    started_run: str | None = None  # a run this pass started (the facts above are read after it)

    def with_changes(self, **changes: Any) -> Observed:
        return replace(self, **changes)
