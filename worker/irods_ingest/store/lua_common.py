"""Lua functions the engine's scripts share, each defined once.

Every multi-key state change happens in one Lua script, so that no crash can leave it
half done. The scripts belong to the component whose step they are:

| script | owner | why it also touches the other component's keys |
|---|---|---|
| ``START_RUN``, ``STOP_RUN`` | :mod:`irods_ingest.jobstate.lua` | a run opens with its root task queued, and a stop empties the queue in the same step as it fences the run |
| ``ACK``, ``PROGRESS``, ``REQUEUE``, ``PROMOTE_DUE`` | :mod:`irods_ingest.queue.lua` | a task's outcome (counters, failure records, cache updates, joins, closing the run) changes in the same step as the task leaves its processing list: nothing counts twice or never |

A script is assembled as a prefix of these functions plus its body; a function a script
does not call costs nothing but its definition. Rules they keep:

- a task is *in flight* while it sits in some worker's processing list, queued while it
  is in the queue or the delayed set. Both numbers are derived, never stored, so a crash
  cannot leave them wrong;
- a run is complete when nothing is queued, delayed or in flight: the script that sees
  this enqueues the FINALIZE task (delivered at least once, like any task) and the FINALIZE
  task's own ack closes the run.
"""

from __future__ import annotations

from typing import Final

from irods_ingest.store.keys import HISTORY_LIMIT

# Derived in-flight count: the sum of the claimers' processing lists.
IN_FLIGHT: Final = """
local function in_flight(claimers_key, processing_prefix)
  local total = 0
  for _, worker in ipairs(redis.call('SMEMBERS', claimers_key)) do
    total = total + redis.call('LLEN', processing_prefix .. worker)
  end
  return total
end
"""

# When the run has nothing left, queue its FINALIZE task (once: state moves to finishing).
# Needs IN_FLIGHT.
MAYBE_FINISH: Final = """
local function maybe_finish(run_key, queue_key, delayed_key, claimers_key, processing_prefix, finalize_raw)
  if redis.call('HGET', run_key, 'state') ~= 'running' then return 0 end
  if redis.call('LLEN', queue_key) > 0 or redis.call('ZCARD', delayed_key) > 0 then return 0 end
  if in_flight(claimers_key, processing_prefix) > 0 then return 0 end
  redis.call('HSET', run_key, 'state', 'finishing')
  redis.call('LPUSH', queue_key, finalize_raw)
  redis.call('HINCRBY', run_key, 'tasks_enqueued', 1)
  return 1
end
"""

# Failure records are capped per run: a record is pushed only while the list holds fewer
# than the job's max_failure_records; the rest are counted (failures_dropped), never stored.
PUSH_FAILURES: Final = """
local function push_failures(run_key, failures_key, records, cap)
  local dropped = 0
  for _, raw in ipairs(records) do
    if redis.call('LLEN', failures_key) < cap then
      redis.call('LPUSH', failures_key, raw)
    else
      dropped = dropped + 1
    end
  end
  if dropped > 0 then redis.call('HINCRBY', run_key, 'failures_dropped', dropped) end
end
"""

# A vanished collection is removed once the DELETE tasks of its contents are acknowledged
# (keys.py, ``joins``): each of them counts "n:<collection>" down when its ack applies, and
# the one that reaches 0 queues the removal task stored in "t:<collection>". Acks apply
# exactly once per task, so the removal is queued exactly once, after the last of them.
JOIN_DONE: Final = """
local function join_done(joins_key, run_key, queue_key, collection)
  if redis.call('HINCRBY', joins_key, 'n:' .. collection, -1) > 0 then return end
  local release = redis.call('HGET', joins_key, 't:' .. collection)
  redis.call('HDEL', joins_key, 'n:' .. collection, 't:' .. collection)
  if release then
    redis.call('LPUSH', queue_key, release)
    redis.call('HINCRBY', run_key, 'tasks_enqueued', 1)
  end
end
"""

# A summary of the run (its hash, with ``changes`` over it) at the head of the history,
# which keeps the newest HISTORY_LIMIT.
ARCHIVE_RUN: Final = f"""
local function archive_run(run_key, history_key, changes)
  local summary = redis.call('HGETALL', run_key)
  local obj = {{}}
  for i = 1, #summary, 2 do obj[summary[i]] = summary[i + 1] end
  for name, value in pairs(changes) do obj[name] = value end
  redis.call('LPUSH', history_key, cjson.encode(obj))
  redis.call('LTRIM', history_key, 0, {HISTORY_LIMIT - 1})
end
"""
