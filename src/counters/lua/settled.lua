-- giftstream: a batch is in the ledger; forget its pending entries.
-- Decrements a creator's pending diamonds only for entries whose XACK
-- answered 1, so a repeated call (a retry after a crash, or a second
-- worker that committed the same gifts) cannot decrement twice.
-- KEYS: 1 settlement stream
-- ARGV: 1 group  2 pending-diamonds key prefix, then per entry: id, creator, diamonds
-- Answers how many entries were acknowledged by this call.
-- The entries are deleted with one XDEL per 256 ids, not one per entry
-- (each redis.call costs about a microsecond beyond the command).
local acked = 0
local ids = {}
for i = 3, #ARGV, 3 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('DECRBY', ARGV[2] .. ARGV[i + 1], ARGV[i + 2])
    acked = acked + 1
  end
  ids[#ids + 1] = ARGV[i]
  if #ids == 256 then
    redis.call('XDEL', KEYS[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then
  redis.call('XDEL', KEYS[1], unpack(ids))
end
return acked
