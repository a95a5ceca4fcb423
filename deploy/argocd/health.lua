-- Argo CD health check for SyncJob (ingest.irods.dev/v1alpha1).
--
-- Install it in argocd-cm (see docs/deploy.md, "GitOps"):
--   resource.customizations.health.ingest.irods.dev_SyncJob: |
--     <this file>
--
-- Reads the same kstatus conditions Flux uses (Ready / Reconciling / Stalled, with
-- observedGeneration), plus spec.suspend:
--   Degraded     Stalled=True: the spec cannot run (invalid, a missing or broken handler, a name
--                taken by another), the last run failed (a wrong iRODS password, files that
--                failed; a run stopped on request is no failure), or no worker got ready
--                (WorkersNotReady, the cause in the message)
--   Suspended    spec.suspend is true (an active run is paused, its tasks kept)
--   Progressing  no status yet, a spec change not yet observed, a run in progress, Ready not True
--   Healthy      Ready=True: the last run succeeded, or the job waits for its schedule
-- Written for Argo CD's Lua (gopher-lua, Lua 5.1): no integer division, no goto.

local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = message_of(stalled, "Stalled")
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "SyncJob is suspended"
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = message_of(reconciling, "Run in progress")
  return hs
end

local ready = condition(conditions, "Ready")
if is_true(ready) then
  local failed = condition(conditions, "Failed")
  -- Statuses written before a failed run set Stalled: Ready=True beside Failed=True.
  if is_true(failed) and failed.reason ~= "RunStopped" then
    hs.status = "Degraded"
    hs.message = message_of(failed, "The last run failed")
    return hs
  end
  hs.status = "Healthy"
  hs.message = message_of(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "Waiting for the Ready condition")
return hs
