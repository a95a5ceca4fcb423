"""Worker replica arithmetic: how many the queue needs, and the scale-down stabilisation window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

DEFAULT_SCALE_DOWN_WINDOW: Final = timedelta(seconds=120)


def desired_replicas(
    *,
    queued: int,
    in_flight: int,
    concurrency: int,
    min_replicas: int,
    max_replicas: int,
    suspended: bool = False,
) -> int:
    """Workers needed so that every queued or running task has a slot, within [min, max].

    Queue depth is counted in tasks, and filesPerTask already sized the file tasks, so the number
    of files does not enter here. A suspended job has no workers regardless of minReplicas.
    """
    if suspended:
        return 0
    if concurrency < 1 or min_replicas < 0 or max_replicas < min_replicas:
        raise ValueError("need concurrency >= 1 and 0 <= min_replicas <= max_replicas")
    pending = max(queued, 0) + max(in_flight, 0)
    wanted = math.ceil(pending / concurrency)
    return max(min_replicas, min(max_replicas, wanted))


@dataclass(frozen=True)
class ScaleRecommendation:
    at: datetime
    replicas: int


@dataclass(frozen=True)
class ScaleDecision:
    replicas: int
    history: tuple[ScaleRecommendation, ...]


def stabilize_replicas(
    *,
    desired: int,
    current: int,
    history: Sequence[ScaleRecommendation],
    now: datetime,
    window: timedelta = DEFAULT_SCALE_DOWN_WINDOW,
) -> ScaleDecision:
    """Scale up at once; scale down only to the highest value recommended within ``window``.

    The same rule as the HorizontalPodAutoscaler's scale-down stabilisation. Keep the returned
    history for the next call. With no recommendation inside the window (first call, or after a
    restart), the current replica count counts as one made now, so a restart never scales down
    early. Stopping (suspend, delete) should apply 0 directly, without this.
    """
    recent = [entry for entry in history if now - entry.at < window]
    if not recent:
        recent = [ScaleRecommendation(now, current)]
    recent.append(ScaleRecommendation(now, desired))
    replicas = desired if desired >= current else min(current, max(entry.replicas for entry in recent))
    return ScaleDecision(replicas=replicas, history=tuple(recent))
