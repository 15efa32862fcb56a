-- giftstream: end the combo streaks that are due (every node's reaper).
-- KEYS: 1 the due zset `{gs}:cdue`
-- ARGV: 1 now ms  2 streaks ended at most  3 streak key prefix `{gs}:cs:`
--       4 target hash prefix `{gs}:t:`  5 index set prefix `{gs}:csi:`
-- Pops members whose due time really passed (re-checked on the streak
-- itself: a gift may have extended it), and ends each (combo_lib.lua):
-- seq, history, publish and delete in this one atomic step, so whichever
-- node runs it first emits the `combo_end`, once. Answers how many ended.
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local ended = 0
for _, m in ipairs(due) do
  local bar = string.find(m, '|', 1, true)
  if not bar then
    redis.call('ZREM', KEYS[1], m)
  else
    local tkey = string.sub(m, 1, bar - 1)
    local sender = string.sub(m, bar + 1)
    local sk = ARGV[3] .. tkey .. ':' .. sender
    local f = redis.call('HMGET', sk, 'du', 'lt', 'tl')
    local du = tonumber(f[1] or '')
    if not du then
      -- Ended or expired meanwhile.
      redis.call('ZREM', KEYS[1], m)
      redis.call('SREM', ARGV[5] .. tkey, sender)
    elseif streak_gone(f[2], f[3], now) then
      streak_drop(sk, ARGV[5] .. tkey, KEYS[1], m, sender)
    elseif du >= now then
      redis.call('ZADD', KEYS[1], du, m)
    elseif combo_end_streak(sk, ARGV[4] .. tkey, ARGV[5] .. tkey, KEYS[1], m, sender, du, now) then
      ended = ended + 1
    end
  end
end
return ended
