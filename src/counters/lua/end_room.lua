-- giftstream: stop a room accepting gifts, end its combo streaks, and tell
-- every node.
-- KEYS: 1 target hash  2 the room's streak index set  3 the due zset
-- ARGV: 1 the room's event channel  2 now ms  3 streak key prefix
--       `{gs}:cs:`  4 the room's target key (`room:<id>`)
-- Answers 1, or 0 when the room is unknown. Each open streak ends
-- (combo_lib.lua, in the order of their last gifts) before `room_ended`,
-- which is published in the same atomic step as `live = 0`, so on every
-- node it follows every gift event and streak end of the room.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'live', '0')
local now = tonumber(ARGV[2])
local open = {}
for _, sender in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local sk = ARGV[3] .. ARGV[4] .. ':' .. sender
  local s = redis.call('HMGET', sk, 'sl', 'du', 'lt', 'tl')
  if s[1] and streak_gone(s[3], s[4], now) then
    streak_drop(sk, KEYS[2], KEYS[3], ARGV[4] .. '|' .. sender, sender)
  elseif s[1] then
    open[#open + 1] = {tonumber(s[1]), sender, sk, tonumber(s[2])}
  else
    redis.call('SREM', KEYS[2], sender)
  end
end
table.sort(open, function(a, b) return a[1] < b[1] end)
for _, o in ipairs(open) do
  combo_end_streak(o[3], KEYS[1], KEYS[2], KEYS[3], ARGV[4] .. '|' .. o[2], o[2], math.min(now, o[4]), now)
end
redis.call('SPUBLISH', ARGV[1], '{"type":"room_ended"}')
return 1
