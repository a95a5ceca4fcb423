"""Reconciling SyncJobs: a pure decision between gathering and doing.

- :mod:`.context`: the adapters and the operator's :class:`OperatorMemory`; :mod:`.policy`: the admin's :class:`Policy`;
- :mod:`.observed` / :mod:`.observe`: everything a pass knows, and gathering it (reads only);
- :mod:`.decide` / :mod:`.report`: the decision (pure): refusals, credential, runs, suspension; workers and status;
- :mod:`.health`, :mod:`.workers`, :mod:`.edits`, :mod:`.once` (pure): conditions and phase; the workers'
  readiness and the cause when none gets ready; edits that wait for the next run; one Event per cause;
- :mod:`.intents`: what a decision asks for, one value per side effect;
- :mod:`.execute`: the executor performing intents through the adapters;
- :mod:`.messages`: the words of conditions and Events;
- :mod:`.reconciler`: one pass (observe, decide, execute) and the cleanup on deletion.
"""

from irods_ingest_operator.reconcile.context import OperatorContext, OperatorMemory
from irods_ingest_operator.reconcile.decide import (
    CleanupGiveUp,
    CleanupRetry,
    decide,
    decide_cleanup_failure,
    decide_deletion,
)
from irods_ingest_operator.reconcile.observed import CredentialFacts, Observed
from irods_ingest_operator.reconcile.policy import Policy
from irods_ingest_operator.reconcile.reconciler import Outcome, cleanup, reconcile

__all__ = [
    "CleanupGiveUp",
    "CleanupRetry",
    "CredentialFacts",
    "Observed",
    "OperatorContext",
    "OperatorMemory",
    "Outcome",
    "Policy",
    "cleanup",
    "decide",
    "decide_cleanup_failure",
    "decide_deletion",
    "reconcile",
]
