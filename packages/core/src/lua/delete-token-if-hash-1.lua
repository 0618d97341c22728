--[[
  Deletes a token record only while it still holds the given token, then publishes the
  `invalidated` message. A pod that saw a 401 for an old token therefore never deletes a newer
  token that another pod stored meanwhile.

  KEYS[1]  token key  <prefix>:{id}:token

  ARGV[1]  SHA-256 of the access token to delete, hex (the record's field `h`)
  ARGV[2]  events channel  <prefix>:{id}:events
  ARGV[3]  the message to publish on that channel

  Returns 1 when the record held that token and was deleted, 0 otherwise.
]]
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then
  return 0
end

local ok, stored = pcall(cjson.decode, redis.call('GET', KEYS[1]))
if not ok or type(stored) ~= 'table' or stored.h ~= ARGV[1] then
  return 0
end

redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
