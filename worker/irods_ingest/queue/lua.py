"""The Task Enqueuer's Lua scripts: promotion of due retries, the ack, a paged listing's
progress, the reaper's requeue.

The ACK and REQUEUE scripts change the run's state too (counters, failure records, the
change cache, joins, closing the run): a task's outcome must apply in the same step as the
task leaves its processing list, or a crash between the two would count it twice or never
(see :mod:`irods_ingest.store.lua_common` for who owns which script, and the functions
they share).
"""

from __future__ import annotations

from typing import Final

from irods_ingest.store.lua_common import ARCHIVE_RUN, IN_FLIGHT, JOIN_DONE, MAYBE_FINISH, PUSH_FAILURES

# Move due delayed tasks to the queue.  KEYS: delayed, queue   ARGV: now, limit
PROMOTE_DUE: Final = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, raw in ipairs(due) do
  redis.call('ZREM', KEYS[1], raw)
  redis.call('LPUSH', KEYS[2], raw)
end
return #due
"""

# New tasks travel as script arguments: push ``count`` of them from ARGV[first] onto the queue
# (KEYS[2]) with variadic pushes, in chunks under unpack()'s limit (LUAI_MAXCSTACK 8000).
# Shared by ACK and PROGRESS.
PUSH_TASKS: Final = """
local function push(command, first, count)
  for from = first, first + count - 1, 1000 do
    redis.call(command, KEYS[2], unpack(ARGV, from, math.min(from + 999, first + count - 1)))
  end
end
"""

# Acknowledge one task with its whole outcome.
# KEYS: run, queue, delayed, processing(W), failures, claimers, history, cache marker, joins, cache keys...,
#       then (with seen_drop) the seen index and the listing records to remove
# ARGV: raw task, run id, outcome JSON, processing prefix, finalize raw, now, E, F, then E raw
#       tasks to ``enqueue`` and F raw tasks to ``enqueue_first``
# outcome: {counters={}, delay=[[score, raw]], failures=[raw], max_failures=N,
#           cache=[[key_index, field, value_or_false]], finalize=bool, error=str,
#           join_open=[[collection, tasks, raw removal task]], join_add=[[collection, tasks]],
#           join_done=collection or '', seen_drop=index of the seen index in KEYS (optional)}
# The new tasks travel as arguments of their own, not inside the outcome JSON: a first-sync
# scan's ack carries thousands of names, and JSON inside JSON would be escaped by the worker
# and decoded by the script only to be pushed again as they were.
# ``enqueue`` goes to the far end of the queue (FIFO); ``enqueue_first`` (directory scans) to
# the claim end, so that discovery runs ahead of the file batches it produces: the whole tree
# is known early (progress, ETA) and every worker can scan while there is scanning to do.
# Cache updates are applied as one variadic HSET/HDEL per directory (sets before deletes,
# as listed), not one call per file.
ACK: Final = (
    PUSH_TASKS
    + ARCHIVE_RUN
    + IN_FLIGHT
    + MAYBE_FINISH
    + PUSH_FAILURES
    + JOIN_DONE
    + """
if redis.call('LREM', KEYS[4], -1, ARGV[1]) == 0 then
  -- the reaper already returned this task to the queue: its redelivery will count it
  return 'stale'
end
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[2] then return 'fenced' end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'finishing' then return 'fenced' end
local outcome = cjson.decode(ARGV[3])
for name, delta in pairs(outcome.counters) do
  if delta ~= 0 then redis.call('HINCRBY', KEYS[1], name, delta) end
end
local to_enqueue, to_enqueue_first = tonumber(ARGV[7]), tonumber(ARGV[8])
push('LPUSH', 9, to_enqueue)
push('RPUSH', 9 + to_enqueue, to_enqueue_first)
local enqueued = to_enqueue + to_enqueue_first
for _, item in ipairs(outcome.delay) do
  redis.call('ZADD', KEYS[3], item[1], item[2])
  enqueued = enqueued + 1
end
if enqueued > 0 then redis.call('HINCRBY', KEYS[1], 'tasks_enqueued', enqueued) end
-- joins: open and add before this task's own count-down, so that none reaches 0 early
for _, item in ipairs(outcome.join_open or {}) do
  redis.call('HINCRBY', KEYS[9], 'n:' .. item[1], item[2])
  redis.call('HSET', KEYS[9], 't:' .. item[1], item[3])
end
for _, item in ipairs(outcome.join_add or {}) do
  redis.call('HINCRBY', KEYS[9], 'n:' .. item[1], item[2])
end
if outcome.join_done and outcome.join_done ~= '' then join_done(KEYS[9], KEYS[1], KEYS[2], outcome.join_done) end
push_failures(KEYS[1], KEYS[5], outcome.failures, tonumber(outcome.max_failures) or 1000)
local sets, dels = {}, {}
for _, op in ipairs(outcome.cache) do
  local group = dels
  if op[3] then group = sets end
  local args = group[op[1]]
  if not args then args = {}; group[op[1]] = args end
  args[#args + 1] = op[2]
  if op[3] then args[#args + 1] = op[3] end
end
-- unpack() is bounded by Lua's C stack (LUAI_MAXCSTACK 8000): apply in chunks
local function apply(command, key, args)
  for first = 1, #args, 1000 do
    redis.call(command, key, unpack(args, first, math.min(first + 999, #args)))
  end
end
for index, args in pairs(sets) do apply('HSET', KEYS[9 + index], args) end
for index, args in pairs(dels) do apply('HDEL', KEYS[9 + index], args) end
-- the marker promises scans that this generation has a cache to read (see keys.py)
if next(sets) ~= nil then redis.call('SET', KEYS[8], '1') end
-- directories listed in pages and judged by this task: their records go with its ack
if outcome.seen_drop then
  local index = tonumber(outcome.seen_drop)
  for i = index + 1, #KEYS do
    redis.call('UNLINK', KEYS[i])
    redis.call('SREM', KEYS[index], KEYS[i])
  end
end
if outcome.error and outcome.error ~= '' then redis.call('HSET', KEYS[1], 'error', outcome.error) end
if outcome.finalize then
  local err = redis.call('HGET', KEYS[1], 'error')
  local failed = tonumber(redis.call('HGET', KEYS[1], 'files_failed') or '0')
  local tasks_failed = tonumber(redis.call('HGET', KEYS[1], 'tasks_failed') or '0')
  local final = 'done'
  if failed > 0 or tasks_failed > 0 or (err and err ~= '') then final = 'failed' end
  redis.call('HSET', KEYS[1], 'state', final, 'ended', ARGV[6])
  redis.call('DEL', KEYS[9])
  archive_run(KEYS[1], KEYS[7], {})
  return final
end
if maybe_finish(KEYS[1], KEYS[2], KEYS[3], KEYS[6], ARGV[4], ARGV[5]) == 1 then return 'finishing' end
return 'ok'
"""
)

# Commit one page of a directory listed in pages (execute.scan_pages) while its SCAN task stays
# claimed: the page's counters, tasks and failure records, and the record of the names it
# accounted for (keys.py: seen pages), in one step -- what the page did is either all in
# Redis or not at all. Refused unless the task still sits in this worker's processing list
# (a reaped task's redelivery redoes the listing) and its run is current.
# A directory's judgement (stale cache entries, DELETE tasks) goes the same way in chunks when
# it is larger than a page: then without a record.
# KEYS: run, queue, processing(W), failures, pages record, seen index, the directory's cache
# ARGV: raw task, run id, outcome JSON {counters, failures, max_failures, cache_delete=[field]},
#       page record ('' = none), ttl, E, F, then E raw tasks to ``enqueue`` and F to
#       ``enqueue_first`` (as ACK)
PROGRESS: Final = (
    PUSH_TASKS
    + PUSH_FAILURES
    + """
local held = false
for _, raw in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  if raw == ARGV[1] then held = true; break end
end
if not held then return 'stale' end
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[2] then return 'fenced' end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'finishing' then return 'fenced' end
local outcome = cjson.decode(ARGV[3])
for name, delta in pairs(outcome.counters) do
  if delta ~= 0 then redis.call('HINCRBY', KEYS[1], name, delta) end
end
local to_enqueue, to_enqueue_first = tonumber(ARGV[6]), tonumber(ARGV[7])
push('LPUSH', 8, to_enqueue)
push('RPUSH', 8 + to_enqueue, to_enqueue_first)
if to_enqueue + to_enqueue_first > 0 then
  redis.call('HINCRBY', KEYS[1], 'tasks_enqueued', to_enqueue + to_enqueue_first)
end
push_failures(KEYS[1], KEYS[4], outcome.failures, tonumber(outcome.max_failures) or 1000)
local stale = outcome.cache_delete or {}
for first = 1, #stale, 1000 do
  redis.call('HDEL', KEYS[7], unpack(stale, first, math.min(first + 999, #stale)))
end
if ARGV[4] ~= '' then
  local page = redis.call('HINCRBY', KEYS[5], 'n', 1)
  redis.call('HSET', KEYS[5], tostring(page), ARGV[4])
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[5]))
  redis.call('SADD', KEYS[6], KEYS[5])
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[5]))
end
return 'ok'
"""
)

# Return the tasks of workers whose heartbeat expired (or of one named worker, for a
# warm shutdown) to the queue.  A task that was in flight when its worker died counts an
# attempt; past max_attempts it is dead-lettered, so a poison task cannot crash-loop.
# A returned task is marked redelivered ("rd"): its earlier delivery's outcome can never be
# applied any more (its ack finds it gone from the processing list: "stale"), so work that
# delivery did (an object it deleted) is the redelivery's to count. A dead-lettered task
# counts its join down (a vanished collection's removal must not wait for it for ever).
# KEYS: run, queue, delayed, claimers, failures, joins
# ARGV: processing prefix, heartbeat prefix, max attempts, now, only-worker ('' = all dead),
#       count attempt ('1'/'0'), finalize raw, max failure records
REQUEUE: Final = (
    IN_FLIGHT
    + MAYBE_FINISH
    + PUSH_FAILURES
    + JOIN_DONE
    + """
local moved, dead_lettered = 0, 0
local run_id = redis.call('HGET', KEYS[1], 'id')
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local eligible
  if ARGV[5] ~= '' then eligible = (worker == ARGV[5])
  else eligible = (redis.call('EXISTS', ARGV[2] .. worker) == 0) end
  if eligible then
    local plist = ARGV[1] .. worker
    while true do
      local raw = redis.call('RPOP', plist)
      if not raw then break end
      local decoded, task = pcall(cjson.decode, raw)
      if not decoded or type(task) ~= 'table' then
        -- Not a task (a forged or damaged payload): back to the queue as it is, where the
        -- claiming worker dead-letters it with its reason. It must not stop the reaper.
        redis.call('RPUSH', KEYS[2], raw)
        moved = moved + 1
      elseif task.run == run_id then
        task.attempt = tonumber(task.attempt) or 0
        if ARGV[6] == '1' then task.attempt = task.attempt + 1 end
        if task.attempt > tonumber(ARGV[3]) then
          local files = 0
          if task.entries then files = #task.entries end
          if task.paths then files = files + #task.paths end
          redis.call('HINCRBY', KEYS[1], 'tasks_failed', 1)
          redis.call('HINCRBY', KEYS[1], 'files_failed', files)
          push_failures(KEYS[1], KEYS[5], {cjson.encode({
            task = task.id, kind = task.kind, path = task.dir or '', attempts = task.attempt,
            reason = 'a worker died while processing this task ' .. task.attempt .. ' times',
            time = tonumber(ARGV[4]), files = files})}, tonumber(ARGV[8]) or 1000)
          if type(task.af) == 'string' and task.af ~= '' then join_done(KEYS[6], KEYS[1], KEYS[2], task.af) end
          dead_lettered = dead_lettered + 1
        else
          task.rd = 1
          redis.call('RPUSH', KEYS[2], cjson.encode(task))
          moved = moved + 1
        end
      end
    end
    redis.call('SREM', KEYS[4], worker)
  end
end
if dead_lettered > 0 then maybe_finish(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[7]) end
return {moved, dead_lettered}
"""
)
