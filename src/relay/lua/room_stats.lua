-- giftstream: publish this node's viewer count of a room and read the
-- room's stats across nodes.
-- KEYS: 1 the room's viewers hash (field = node id, value = 'count:ts ms')
--       2 the room's top-gifters zset  3 target hash
-- ARGV: 1 node id  2 viewers on this node  3 now ms  4 count ttl ms
--       5 top entries returned
-- A node that stops refreshing its field (dead) ages out after the ttl;
-- a count of 0 removes the field. Answers {viewers, diamonds, user1,
-- diamonds1, ...} (top gifters, largest first).
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local all = redis.call('HGETALL', KEYS[1])
local viewers = 0
for i = 1, #all, 2 do
  local count, ts = string.match(all[i + 1], '^(%d+):(%d+)$')
  if count and now - tonumber(ts) <= ttl then
    viewers = viewers + tonumber(count)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
local out = {string.format('%.0f', viewers), redis.call('HGET', KEYS[3], 'diamonds') or '0'}
local top = redis.call('ZREVRANGE', KEYS[2], 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
for i = 1, #top do out[#out + 1] = top[i] end
return out
