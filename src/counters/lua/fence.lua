-- giftstream: raise one loader's load fence (see credit.lua).
-- KEYS: 1 the load fence (sorted set: loader -> deadline, ms on Redis's clock)
-- ARGV: 1 loader (a node's consumer name)  2 how long it stands at most, ms
-- Lapsed entries are dropped; the key lives as long as its last deadline.
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A fence of an older version (a plain key) is replaced.
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
redis.call('ZADD', KEYS[1], int(now + tonumber(ARGV[2])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.status_reply('OK')
