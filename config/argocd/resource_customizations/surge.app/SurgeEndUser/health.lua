-- Argo CD health of a SurgeEndUser, read from the conditions the operator
-- writes (Ready, Reconciling and Stalled, after the kstatus conventions).
-- Argo CD runs custom health scripts without the string library, so this
-- script uses only the base and table functions.
hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local ready = condition("Ready")
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")

-- A paused resource gets no calls to Surge, not even to delete its user, so
-- pausing explains every other state and is reported first.
if obj.metadata.annotations ~= nil and obj.metadata.annotations["surge.app/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by the surge.app/paused annotation: the operator leaves this end user alone until it is removed"
  return hs
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  if isTrue(reconciling) then
    hs.message = "Being deleted: " .. reconciling.message
  else
    hs.message = "Being deleted: the operator removes the end user from Surge (or orphans it) before the resource goes"
  end
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the status"
  return hs
end

-- Conditions from an earlier generation say nothing about the current spec;
-- the operator stamps observedGeneration only once an outcome is final.
local generation = obj.metadata.generation or 0
local observedGeneration = obj.status.observedGeneration or 0
if observedGeneration < generation then
  hs.status = "Progressing"
  if isTrue(reconciling) then
    hs.message = reconciling.message
  else
    hs.message = "Waiting for the operator to apply generation " .. tostring(generation)
  end
  return hs
end

if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(stalled, messageOf(ready, "Stalled"))
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "Ready")
  return hs
end

if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling, messageOf(ready, "Reconciling"))
  return hs
end

if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = messageOf(ready, "Not ready")
  return hs
end

hs.status = "Progressing"
hs.message = messageOf(ready, "Waiting for the operator to report the status")
return hs
