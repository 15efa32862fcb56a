-- giftstream: reconcile repair, compare-and-set of one wallet or one
-- creator's pending diamonds (skipped when a gift changed it meanwhile).
-- KEYS: 1 counter  ARGV: 1 value observed ('' when missing)  2 new value
-- Answers 1 when set, 0 when the value moved.
local now = redis.call('GET', KEYS[1]) or ''
if now ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
