-- giftstream: a room's events after a seq, from its history stream.
-- KEYS: 1 the room's history stream (entry ids `<seq>-0`)  2 target hash
-- ARGV: 1 since  2 events returned at most  3 oldest ts ms still kept
-- Answers {'OK', seq, event JSON...} with every event of seq > since, in
-- order (seq = the room's seq now), or {'GONE', first seq kept} when the
-- stream no longer reaches back to since + 1 (trimmed by count or age) or
-- more than ARGV[2] events would be needed.
local function int(x) return string.format('%.0f', x) end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local since = tonumber(ARGV[1])
if since >= seq then
  return {'OK', int(seq)}
end
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #head == 0 then
  return {'GONE', int(seq + 1)}
end
local first = tonumber(string.match(head[1][1], '^(%d+)'))
if first > since + 1 then
  return {'GONE', int(first)}
end
local len_max = tonumber(ARGV[2])
local rows = redis.call('XRANGE', KEYS[1], int(since + 1) .. '-0', '+', 'COUNT', len_max + 1)
if #rows > len_max then
  return {'GONE', int(first)}
end
local out = {'OK', int(seq)}
local ts_min = tonumber(ARGV[3])
for i, row in ipairs(rows) do
  local f = row[2]
  local e, ts = nil, nil
  for j = 1, #f, 2 do
    if f[j] == 'e' then e = f[j + 1] elseif f[j] == 'ts' then ts = tonumber(f[j + 1]) end
  end
  if i == 1 and ts and ts < ts_min then
    return {'GONE', int(first)}
  end
  if e then out[#out + 1] = e end
end
return out
