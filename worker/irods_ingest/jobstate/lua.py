"""The run lifecycle's Lua scripts: a run starts and stops in one atomic step each.

Both touch the queue's keys as well (see :mod:`irods_ingest.store.lua_common` for who owns
which script): a run opens with its first tasks already queued, so no worker ever sees a
running run with nothing to do, and a stop drops the queued and delayed tasks in the step
that fences the run, so none of them is claimed afterwards.
"""

from __future__ import annotations

from typing import Final

from irods_ingest.store.lua_common import ARCHIVE_RUN

# KEYS: job, run, queue, delayed, failures, history, jobs_index, joins
# ARGV: run_id, now, initial tasks (JSON array of raw tasks), config_json, force ("1" to replace
#       an active run), job name, files already known (a retry run), run kind (full | retry),
#       the change cache this start adopted (JSON, or "": see jobstate.retained_caches)
START_RUN: Final = (
    ARCHIVE_RUN
    + """
local state = redis.call('HGET', KEYS[2], 'state')
if (state == 'running' or state == 'finishing') and ARGV[5] ~= '1' then
  return {'busy', redis.call('HGET', KEYS[2], 'id')}
end
if state then
  -- keep a summary of the run being replaced
  local changes = {}
  if state == 'running' or state == 'finishing' then
    changes = {state = 'stopped', ended = ARGV[2], error = 'replaced by a new run'}
  end
  archive_run(KEYS[2], KEYS[6], changes)
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8])
redis.call('HSET', KEYS[1], 'config', ARGV[4], 'run', ARGV[1])
local initial = cjson.decode(ARGV[3])
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'state', 'running', 'started', ARGV[2], 'tasks_enqueued', #initial,
           'files_discovered', ARGV[7], 'kind', ARGV[8])
if ARGV[9] and ARGV[9] ~= '' then redis.call('HSET', KEYS[2], 'adopted_cache', ARGV[9]) end
for _, raw in ipairs(initial) do redis.call('LPUSH', KEYS[3], raw) end
redis.call('SADD', KEYS[7], ARGV[6])
return {'started', ARGV[1]}
"""
)

# KEYS: run, queue, delayed, history, joins
# ARGV: now, reason
STOP_RUN: Final = (
    ARCHIVE_RUN
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'finishing' then return {'idle', state or ''} end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('HSET', KEYS[1], 'state', 'stopped', 'ended', ARGV[1], 'error', ARGV[2])
archive_run(KEYS[1], KEYS[4], {})
return {'stopped', redis.call('HGET', KEYS[1], 'id')}
"""
)

# A starting job claims a retained change cache before copying it, so that of two jobs of the
# same settings starting at once only one takes it (and a crashed adoption resumes: the same
# job may claim again). One key: the retained cache's own meta hash, never a job's.
# KEYS: the retained cache's meta   ARGV: version, job, now
CLAIM_RETAINED_CACHE: Final = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
local adopter = redis.call('HGET', KEYS[1], 'adopter')
if adopter and adopter ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'adopter', ARGV[2], 'adopted', ARGV[3])
return 1
"""
