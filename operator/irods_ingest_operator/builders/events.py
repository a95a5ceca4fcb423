"""Events about a SyncJob (posted explicitly: kopf 1.45 no longer turns logs into Events)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from irods_ingest_operator.builders.text import format_micro_time, format_time, shorten
from irods_ingest_operator.constants import REPORTING_COMPONENT, EventType
from irods_ingest_operator.refs import JobRef, as_job_ref

MAX_EVENT_MESSAGE_LENGTH: Final = 1024


def build_event(
    job: JobRef | Mapping[str, Any],
    *,
    reason: str,
    message: str,
    now: datetime,
    type: EventType = EventType.NORMAL,
    action: str | None = None,
    reporting_instance: str = REPORTING_COMPONENT,
) -> dict[str, Any]:
    """A core/v1 Event about the SyncJob."""
    ref = as_job_ref(job)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": ref.object_reference(),
        "reason": reason,
        "message": shorten(message, MAX_EVENT_MESSAGE_LENGTH),
        "type": str(type),
        "action": action or reason,
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": reporting_instance,
        "firstTimestamp": format_time(now),
        "lastTimestamp": format_time(now),
        "eventTime": format_micro_time(now),
        "count": 1,
    }
