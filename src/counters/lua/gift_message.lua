-- giftstream: an approved held message (issue 17) into its room or video,
-- with the target's next seq, like a gift event without the money: the
-- room's history and channel, then the creator's inbox.
-- (inbox_lib.lua is prepended.)
-- KEYS: 1 target hash
-- ARGV: 1 event JSON without seq and closing brace  2 event channel
--       3 history stream key  4 history len max  5 history age ms max
--       6 inbox hash prefix  7 inbox history prefix  8 inbox channel prefix
--       9 now ms
-- Answers {'OK', seq} or {'E', 'unknown'}.
local creator = redis.call('HGET', KEYS[1], 'creator')
if not creator then
  return {'E', 'unknown'}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local s = string.format('%.0f', seq)
local event = ARGV[1] .. ',"seq":' .. s .. '}'
local hist = ARGV[3]
hist_put(hist, ARGV[4], seq, {event}, ARGV[9])
redis.call('PEXPIRE', hist, ARGV[5])
redis.call('SPUBLISH', ARGV[2], event)
inbox_put(ARGV[6] .. creator, ARGV[7] .. creator, ARGV[8] .. creator, inbox_head(creator),
  '{"type":"gift_message",' .. string.sub(event, 2), ARGV[9], ARGV[4], ARGV[5])
return {'OK', s}
