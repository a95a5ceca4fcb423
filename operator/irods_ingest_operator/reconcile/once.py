"""One Event per cause (pure).

Every pass sees the causes anew (a refusal, worker trouble, an edit waiting for the next
run); an Event is news, so it is posted when a cause appears, not on every pass while it
lasts. The condition carries the lasting truth; the Event's count stays 1 and the operator
needs no right to read or patch Events (create only).

What was posted is kept per topic in the operator's memory (``Observed.posted``), written by
the :class:`RememberPosted` intent that goes with each Event. Racing passes (kopf's create
handler and its first timer tick start together, each with a body that has no status yet)
read it under the job's lock, so the second one posts nothing. A restarted operator has no
memory: it then trusts the status it finds, which shows the causes already announced.
"""

from __future__ import annotations

from irods_ingest_operator.reconcile.intents import Intent, PostEvent, RememberPosted
from irods_ingest_operator.reconcile.observed import Observed

TOPIC_REFUSAL = "refusal"  # the Stalled reason of a spec that cannot run
TOPIC_WORKERS = "workers"  # why no worker is ready
TOPIC_PENDING = "pending"  # edits that apply from the next run
TOPIC_FAILURES_NAME = "failures-name"  # the failures ConfigMap's name is another's


def post_once(observed: Observed, topic: str, cause: str, event: PostEvent, *, shown: str = "") -> tuple[Intent, ...]:
    """``event`` and the memory of ``cause``, unless this cause was posted already.

    ``shown``: what the status read this pass shows for the topic (a condition's message);
    with no memory of the topic (a restarted operator) a cause it contains counts as posted.
    """
    if observed.posted.get(topic) == cause:
        return ()
    if topic not in observed.posted and cause and cause in shown:
        return (RememberPosted(topic, cause),)
    return (event, RememberPosted(topic, cause))


def cleared(observed: Observed, topic: str) -> tuple[Intent, ...]:
    """The cause went away: forget it, so that it is news again if it comes back."""
    return (RememberPosted(topic, ""),) if observed.posted.get(topic) else ()
