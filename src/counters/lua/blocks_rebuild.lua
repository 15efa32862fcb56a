-- giftstream: replace a creator's block set (see src/counters/redis/blocks.rs).
-- KEYS: 1 the creator's block set  2 the block generation counter
-- ARGV: 1 the generation the ledger was read at  2.. the blocked users
-- Answers 1 when replaced, 0 (nothing changed) when a block or unblock
-- happened since the generation was read (the caller reads again).
local gen = redis.call('GET', KEYS[2]) or '0'
if gen ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
end
return 1
