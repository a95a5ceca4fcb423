"""What a decision asks for: one small value per side effect, performed by the executor in order.

Intents carry everything their effect needs but what only the effect itself can tell: the id
of a run that starts, a new credential's password and version. The executor adds those when
it performs them (:mod:`~irods_ingest_operator.reconcile.messages` words the Events).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from irods_ingest.config import JobConfig
from irods_ingest_operator.builders.scaling import ScaleRecommendation
from irods_ingest_operator.constants import EventReason, EventType


# --- The job: its credential, its runs, the operator's notes ----------------------------------
@dataclass(frozen=True)
class RotateCredential:
    """Make a new worker password (the previous one stays valid), hand it over in the job's
    Secret, then keep its digest; ``announce``: post CredentialRotated (not for the first one)."""

    at: float
    announce: bool


@dataclass(frozen=True)
class RestoreCredential:
    """Recreate the worker user Redis lost, from the kept digests."""


@dataclass(frozen=True)
class Remember:
    """Write one of the operator's notes in the job's Redis hash (constants.MEMO_*)."""

    field: str
    value: str


@dataclass(frozen=True)
class StartRun:
    """Start a run of ``config`` (``force``: replacing an active one); if it started, remember it
    (MEMO_STARTED_ONCE) and post RunStarted saying ``why``."""

    config: JobConfig = field(repr=False)
    force: bool
    why: str


@dataclass(frozen=True)
class RetryFailed:
    """Start a run of ``config`` (prepared by this pass: the handler the ConfigMap holds now)
    that redoes the last run's failures; post RunStarted either way."""

    token: str
    config: JobConfig = field(repr=False)


@dataclass(frozen=True)
class UseHandler:
    """Point the active run at the stored handler ``handler_hash``; if that changed anything,
    post HandlerUpdated with ``message``."""

    handler_hash: str | None
    message: str


# --- The workers and what the operator shows ----------------------------------------------------
@dataclass(frozen=True)
class RememberScaleHistory:
    """Keep the stabilisation window's recommendations (in the operator's memory)."""

    history: tuple[ScaleRecommendation, ...]


@dataclass(frozen=True)
class ForgetScaleHistory:
    """Nothing to smooth (no active run, or suspended): drop the window's recommendations."""


@dataclass(frozen=True)
class ApplyDeployment:
    """Server-side apply of the worker Deployment."""

    manifest: Mapping[str, Any] = field(repr=False)
    replicas: int


@dataclass(frozen=True)
class ScaleDeployment:
    """Set the replicas of the job's own worker Deployment, if it exists (scale subresource)."""

    replicas: int


@dataclass(frozen=True)
class PostEvent:
    reason: EventReason
    message: str
    type: EventType = EventType.NORMAL


@dataclass(frozen=True)
class RememberPosted:
    """Keep the cause of the Event just posted on ``topic`` ("" once it went away), in the
    operator's memory: the next pass posts nothing for the same cause."""

    topic: str
    cause: str


@dataclass(frozen=True)
class WriteFailures:
    """Create or update the job's failures ConfigMap (never another's); then remember
    ``signature`` (constants.MEMO_FAILURES_WRITTEN), so that it is written again only when
    the run's failures or state change."""

    manifest: Mapping[str, Any] = field(repr=False)
    signature: str


@dataclass(frozen=True)
class Note:
    """A log line (an event name and its fields)."""

    event: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class ReportMetrics:
    queued: int
    in_flight: int
    desired: int
    ready: int
    active: bool
    last_sync: datetime | None


@dataclass(frozen=True)
class AnnounceRunEnd:
    """Once per finished run: remember it (MEMO_REPORTED_RUN), count it, post RunSucceeded/RunFailed."""

    run_id: str
    succeeded: bool
    message: str


@dataclass(frozen=True)
class WriteStatus:
    """The status to write (through the status subresource, by the kopf handler's patch)."""

    status: Mapping[str, Any]


# --- Deletion ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeleteJob:
    """Stop the run, delete the workers' Redis user and every Redis key of the job."""

    reason: str


@dataclass(frozen=True)
class ForgetJob:
    """Drop what the operator keeps for the job: its memory and its metric series."""


Intent = (
    RotateCredential | RestoreCredential | Remember | StartRun | RetryFailed | UseHandler
    | RememberScaleHistory | ForgetScaleHistory | ApplyDeployment | ScaleDeployment | PostEvent | RememberPosted
    | WriteFailures | Note | ReportMetrics | AnnounceRunEnd | WriteStatus | DeleteJob | ForgetJob
)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """One pass's intents in two parts, performed in order.

    ``changes`` act on the job (credential, runs, notes, handler, suspension); ``report`` sizes
    the workers and shows the job (Deployment, scale, Events, metrics, failures, status). When a change alters what the
    report must show (a run started, the credential rotated), the pass decides again from the
    updated facts and performs that decision's report instead.
    """

    changes: tuple[Intent, ...] = ()
    report: tuple[Intent, ...] = ()

    @property
    def intents(self) -> tuple[Intent, ...]:
        return self.changes + self.report

    @property
    def status(self) -> Mapping[str, Any]:
        return next(i.status for i in self.report if isinstance(i, WriteStatus))
