"""Status conditions: built one by one, merged as a list-map keyed by type, set in consistent groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from irods_ingest_operator.builders.text import format_time
from irods_ingest_operator.constants import ConditionStatus, ConditionType


def build_condition(
    type: ConditionType | str,
    status: ConditionStatus | bool,
    *,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> dict[str, Any]:
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    condition: dict[str, Any] = {
        "type": str(type),
        "status": str(status),
        "reason": str(reason),
        "observedGeneration": observed_generation,
        "lastTransitionTime": format_time(now),
    }
    # An empty message is left out rather than written as "": the project's 1.20 test apiserver
    # decodes "" in custom resources as null and rejects it, and an absent message reads the same.
    if message:
        condition["message"] = message
    return condition


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Merge updated conditions into a list-map keyed by type.

    A condition whose status did not change keeps its lastTransitionTime (the time it last flipped,
    not the time we last looked); reason, message and observedGeneration always take the new values.
    Order is stable: existing types keep their place, new types are appended.
    """
    merged = [dict(condition) for condition in existing]
    index = {condition.get("type"): position for position, condition in enumerate(merged)}
    for update in updates:
        new = dict(update)
        position = index.get(new["type"])
        if position is None:
            index[new["type"]] = len(merged)
            merged.append(new)
            continue
        old = merged[position]
        if old.get("status") == new["status"] and "lastTransitionTime" in old:
            new["lastTransitionTime"] = old["lastTransitionTime"]
        merged[position] = new
    return merged


class Health(StrEnum):
    """The kstatus summary of a SyncJob: Current (ready), InProgress (reconciling) or Failed (stalled)."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


def health_conditions(
    existing: Sequence[Mapping[str, Any]],
    health: Health,
    *,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Set Ready / Reconciling / Stalled together, so they never contradict each other.

    kstatus reads Reconciling and Stalled as "abnormal-true" (present and True only while that is
    the case) and Ready as "normal-true"; all three are always written so `kubectl describe` shows
    the whole picture.
    """
    updates = [
        build_condition(
            kind,
            health.value == kind.value,
            reason=reason,
            message=message if health.value == kind.value or kind is ConditionType.READY else "",
            observed_generation=observed_generation,
            now=now,
        )
        for kind in (ConditionType.READY, ConditionType.RECONCILING, ConditionType.STALLED)
    ]
    return merge_conditions(existing, updates)


def run_outcome_conditions(
    existing: Sequence[Mapping[str, Any]],
    *,
    succeeded: bool,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
    stopped: bool = False,
) -> list[dict[str, Any]]:
    """Succeeded / Failed for the last finished run: exactly one of them True, or neither for a
    run stopped on request (a stop the user asked for is no failure, as a suspended Job's is not)."""
    updates = [
        build_condition(
            kind,
            not stopped and succeeded == (kind is ConditionType.SUCCEEDED),
            reason=reason,
            message=message,
            observed_generation=observed_generation,
            now=now,
        )
        for kind in (ConditionType.SUCCEEDED, ConditionType.FAILED)
    ]
    return merge_conditions(existing, updates)
