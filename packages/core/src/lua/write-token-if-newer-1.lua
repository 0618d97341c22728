--[[
  Stores a token record only when its generation is newer than the stored record's, then
  publishes the `refreshed` message. This is the fencing check: a pod whose lock expired while it
  was paused cannot overwrite a token that a later generation wrote.

  KEYS[1]  token key  <prefix>:{id}:token

  ARGV[1]  generation of this write, an integer
  ARGV[2]  the record, JSON with the generation in field `g`
  ARGV[3]  PX of the record in milliseconds, an integer of at least 1
  ARGV[4]  events channel  <prefix>:{id}:events
  ARGV[5]  the message to publish on that channel

  Returns a two-element array:
    { 1, generation }         the record was stored and the message published
    { 0, stored generation }  rejected: the stored record's generation is the same or newer
  A stored value that is not a record (garbage, JSON without the fields v = 1, a numeric g and
  the strings s and h, another type) is replaced, whatever generation it claims.
]]
local generation = tonumber(ARGV[1])
local key_type = redis.call('TYPE', KEYS[1]).ok

if key_type == 'string' then
  local ok, stored = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  local is_record = ok and type(stored) == 'table' and stored.v == 1
    and type(stored.g) == 'number' and type(stored.s) == 'string' and type(stored.h) == 'string'
  if is_record and stored.g >= generation then
    return { 0, stored.g }
  end
elseif key_type ~= 'none' then
  redis.call('DEL', KEYS[1])
end

redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return { 1, generation }
