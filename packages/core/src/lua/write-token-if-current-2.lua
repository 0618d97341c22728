--[[
  Stores a token record only when its generation is the newest refresh attempt, then publishes
  the `refreshed` message. This is the fencing check: every attempt increments the generation
  counter before its token request, so a pod whose lock expired while it was paused holds an
  older generation and cannot store its token, even after the newer record expired or was
  invalidated.

  KEYS[1]  token key               <prefix>:{id}:token
  KEYS[2]  generation counter key  <prefix>:{id}:generation

  ARGV[1]  generation of this write, an integer
  ARGV[2]  the record, JSON with the generation in field `g`
  ARGV[3]  PX of the record in milliseconds, an integer of at least 1
  ARGV[4]  events channel  <prefix>:{id}:events
  ARGV[5]  the message to publish on that channel

  Returns a two-element array:
    { 1, generation }          the record was stored and the message published
    { 0, counter generation }  rejected: a newer attempt has started since this one
  A stored value of another type than string is deleted before the write.
]]
local generation = tonumber(ARGV[1])
local counter = tonumber(redis.call('GET', KEYS[2]) or '0') or 0

if counter ~= generation then
  return { 0, counter }
end

if redis.call('TYPE', KEYS[1]).ok ~= 'string' then
  redis.call('DEL', KEYS[1])
end

redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return { 1, generation }
