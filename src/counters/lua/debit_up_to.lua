-- giftstream: take up to N coins from a wallet once per op id (a refund).
-- KEYS: 1 wallet  2 applied debit op ids (hash: op id -> coins taken)
-- ARGV: 1 op id  2 coins wanted (>= 0)
-- Answers the coins taken: min(wanted, balance), or the first answer for
-- an op id already applied. The wallet never goes below zero.
local done = redis.call('HGET', KEYS[2], ARGV[1])
if done then
  return tonumber(done)
end
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held < 0 then held = 0 end
local taken = math.min(held, tonumber(ARGV[2]))
if taken > 0 then
  redis.call('DECRBY', KEYS[1], taken)
end
redis.call('HSET', KEYS[2], ARGV[1], taken)
return taken
