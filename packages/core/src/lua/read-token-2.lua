--[[
  Reads a token record and the cooldown in one round trip.

  KEYS[1]  token key     <prefix>:{id}:token, a string with a PX expiry
  KEYS[2]  cooldown key  <prefix>:{id}:cooldown, a string with a PX expiry

  Returns a four-element array:
    [1] the record (string), or nil when the key is missing or not a string
    [2] the record's PTTL in milliseconds (-2 missing, -1 no expiry)
    [3] the cooldown value (string), or nil when none is set
    [4] the cooldown's PTTL in milliseconds (-2 missing)
]]
local function read_string(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then
    return false
  end
  return value
end

local record = read_string(KEYS[1])
local record_pttl = redis.call('PTTL', KEYS[1])
local cooldown = read_string(KEYS[2])
local cooldown_pttl = redis.call('PTTL', KEYS[2])
return { record, record_pttl, cooldown, cooldown_pttl }
