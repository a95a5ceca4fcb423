"""The Task Enqueuer: one job's reliable Redis task queue.

| name | module | what |
|---|---|---|
| :class:`TaskQueue` | ``task_queue`` | claim (``BLMOVE`` into a per-worker processing list), ack, delayed retries and their promotion, heartbeats, requeue of dead workers' tasks and dead letters |
| :class:`ClaimedTask` | ``task_queue`` | a claimed task's early commits: a directory listed in pages commits each page (PROGRESS) while its task stays claimed |
| :class:`TaskOutcome` | ``outcome`` | everything one task changes, applied atomically with its ack |
| ``ACK``, ``PROGRESS``, ``REQUEUE``, ``PROMOTE_DUE`` | ``lua`` | the scripts that do it in one step each |

What travels through the queue is :class:`irods_ingest.tasks.Task`; what a task does is
``irods_ingest.execute``; the loop that claims, executes and acks is
``irods_ingest.worker``. The queue's ack changes the run's counters, failure records and
change cache (:mod:`irods_ingest.jobstate`) in the same script, so that nothing a task did
is counted twice or never.
"""

from irods_ingest.queue.outcome import TaskOutcome
from irods_ingest.queue.task_queue import ClaimedTask, TaskQueue

__all__ = ["ClaimedTask", "TaskOutcome", "TaskQueue"]
