-- giftstream: a batch is in the ledger; forget its pending entries.
-- Decrements a creator's pending diamonds, and the stream's counts of
-- unsettled gifts (`<stream>:n`, gift.lua) and of delivered ones
-- (`<stream>:d`, drain.lua), only for entries whose XACK
-- answered 1, so a repeated call (a retry after a crash, or a second
-- worker that committed the same gifts) cannot decrement twice.
-- (stream_lib.lua is prepended.)
-- KEYS: 1 settlement stream
-- ARGV: 1 group  2 pending-diamonds key prefix, then per entry: id, its
--       gift count, the number of its creators, then creator and diamonds
--       per creator
-- Answers how many entries were acknowledged by this call.
-- The entries are deleted with one XDEL per 256 ids, not one per entry
-- (each redis.call costs about a microsecond beyond the command).
local acked, gifts = 0, 0
local ids = {}
local i = 3
while i <= #ARGV do
  local pairs_n = tonumber(ARGV[i + 2])
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    for j = i + 3, i + 1 + 2 * pairs_n, 2 do
      redis.call('DECRBY', ARGV[2] .. ARGV[j], ARGV[j + 1])
    end
    acked = acked + 1
    gifts = gifts + tonumber(ARGV[i + 1])
  end
  ids[#ids + 1] = ARGV[i]
  if #ids == 256 then
    redis.call('XDEL', KEYS[1], unpack(ids))
    ids = {}
  end
  i = i + 3 + 2 * pairs_n
end
if #ids > 0 then
  redis.call('XDEL', KEYS[1], unpack(ids))
end
-- The stream's counts (gift.lua, drain.lua); below 0 only when entries
-- were written before the counts existed (see stream_lib.lua).
if gifts > 0 then
  for _, k in ipairs({stream_count_keys(KEYS[1])}) do
    if redis.call('DECRBY', k, gifts) < 0 then
      redis.call('SET', k, '0')
    end
  end
end
return acked
