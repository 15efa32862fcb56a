-- giftstream: take one batch of pending gifts for this consumer.
-- First claims entries another (dead) consumer held longer than the idle
-- limit, else reads new ones. Creates the group when it is missing (first
-- start, or after the data was lost). (stream_lib.lua is prepended.)
-- KEYS: 1 settlement stream
-- ARGV: 1 group  2 consumer  3 gifts at most  4 claim idle ms  5 claim cursor
--       6 gifts per entry at most (counters.gift_batch_len_max)
-- Answers {next cursor, {{id, rows}, ...}} (stream_lib.lua). Entries are
-- read whole: a batch holds at most ARGV[3] gifts, or one entry when that
-- entry alone holds more. (A claim takes ARGV[3] / ARGV[6] entries, at
-- least one, so a batch of claimed entries may pass ARGV[3] by less than
-- one entry.)
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local left = tonumber(ARGV[3])
local per = math.max(tonumber(ARGV[6]), 1)
local out = {}
local function take(entries)
  for _, e in ipairs(entries) do
    local row, n = entry_rows(e)
    if row then
      out[#out + 1] = row
      left = left - n
    end
  end
end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], ARGV[5],
  'COUNT', math.max(math.floor(left / per), 1))
take(claimed[2])
if #out > 0 then
  return {claimed[1], out}
end
-- The gift count of the next entry not yet delivered to the group, nil
-- when there is none.
local function next_len()
  local last = last_delivered_id(KEYS[1], ARGV[1])
  local e = redis.call('XRANGE', KEYS[1], '(' .. (last or '0-0'), '+', 'COUNT', 1)[1]
  if not e then
    return nil
  end
  local _, n = entry_rows(e)
  return n
end
-- Whole entries while they fit: many at once while any ARGV[6] would fit,
-- then one at a time, looking at each one's size first. Bounded: each
-- round takes at least one entry, at most 128 rounds.
for _ = 1, 128 do
  local count = math.floor(left / per)
  if count < 1 then
    local n = next_len()
    if not n or (n > left and #out > 0) then
      break
    end
    count = 1
  end
  local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count, 'STREAMS', KEYS[1], '>')
  if not read then
    break
  end
  local before = left
  take(read[1][2])
  -- Gifts delivered to the group and not yet settled (pending_len.lua).
  redis.call('INCRBY', select(2, stream_count_keys(KEYS[1])), before - left)
  if #read[1][2] < count or left <= 0 then
    break
  end
end
return {claimed[1], out}
