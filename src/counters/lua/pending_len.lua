-- giftstream: gifts not yet delivered to any settlement worker.
-- KEYS: 1 settlement stream   ARGV: 1 group
local len = redis.call('XLEN', KEYS[1])
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(p) == 'table' and p.err == nil and p[1] then
  return len - p[1]
end
return len
