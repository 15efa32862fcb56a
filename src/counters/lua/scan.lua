-- giftstream: read unsettled entries after a stream id (for reconcile).
-- (stream_lib.lua is prepended.)
-- KEYS: 1 settlement stream   ARGV: 1 exclusive start id  2 entries at most
-- Answers {{id, rows}, ...} (stream_lib.lua).
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])) do
  local row = entry_rows(e)
  if row then
    out[#out + 1] = row
  end
end
return out
