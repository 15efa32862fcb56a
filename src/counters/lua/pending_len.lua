-- giftstream: gifts in the settlement stream not yet delivered to a
-- settlement worker: gift.lua counts the unsettled ones in `<stream>:n`,
-- drain.lua the delivered and unsettled ones in `<stream>:d`. Without the
-- counts (a stream written before they existed): entries never delivered.
-- (stream_lib.lua is prepended.)
-- KEYS: 1 settlement stream   ARGV: 1 group
local nk, dk = stream_count_keys(KEYS[1])
local n = redis.call('GET', nk)
if n then
  return math.max(tonumber(n) - tonumber(redis.call('GET', dk) or '0'), 0)
end
local len = redis.call('XLEN', KEYS[1])
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(p) == 'table' and p.err == nil and p[1] then
  return len - p[1]
end
return len
