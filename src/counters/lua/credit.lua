-- giftstream: apply a ledger-committed coin credit once per op id.
-- KEYS: 1 wallet  2 applied credit op ids (set)  3 the load fence (sorted
-- set: loader -> deadline in ms on Redis's clock; see fence.lua)
-- ARGV: 1 op id  2 coins  3 largest balance allowed (2^53 - 1)
-- Answers {'OK', balance}, {'E', 'overflow'} or {'E', 'loading'} (Redis is
-- being loaded from the ledger: the credit must wait, or the load would
-- overwrite it with a balance read before it).
local function int(x) return string.format('%.0f', x) end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {'OK', redis.call('GET', KEYS[1]) or '0'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[3], '(' .. int(now), '+inf') > 0 then
  return {'E', 'loading'}
end
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return {'E', 'overflow'}
end
redis.call('SADD', KEYS[2], ARGV[1])
local balance = redis.call('INCRBY', KEYS[1], ARGV[2])
return {'OK', int(balance)}
