-- giftstream: a room's events after a seq, from its history stream.
-- KEYS: 1 the room's history stream (inbox_lib.lua: an entry holds events
--       of consecutive seqs, its id `<last seq>-0`)  2 target hash
-- ARGV: 1 since  2 events returned at most  3 oldest ts ms still kept
-- Answers {'OK', seq, event JSON...} with every event of seq > since, in
-- order (seq = the room's seq now), or {'GONE', first seq kept} when the
-- stream no longer reaches back to since + 1 (trimmed by seq or age) or
-- more than ARGV[2] events would be needed.
local function int(x) return string.format('%.0f', x) end
-- An entry's events (its `e` fields, in order) and its `ts`.
local function events_of(fields)
  local evs, ts = {}, nil
  for j = 1, #fields, 2 do
    if fields[j] == 'e' then
      evs[#evs + 1] = fields[j + 1]
    elseif fields[j] == 'ts' then
      ts = tonumber(fields[j + 1])
    end
  end
  return evs, ts
end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local since = tonumber(ARGV[1])
if since >= seq then
  return {'OK', int(seq)}
end
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #head == 0 then
  return {'GONE', int(seq + 1)}
end
local head_evs = events_of(head[1][2])
local first = tonumber(string.match(head[1][1], '^(%d+)')) - math.max(#head_evs, 1) + 1
if first > since + 1 then
  return {'GONE', int(first)}
end
local len_max = tonumber(ARGV[2])
local rows = redis.call('XRANGE', KEYS[1], int(since + 1) .. '-0', '+', 'COUNT', len_max + 1)
local out = {'OK', int(seq)}
local ts_min = tonumber(ARGV[3])
for i, row in ipairs(rows) do
  local evs, ts = events_of(row[2])
  if i == 1 and ts and ts < ts_min then
    return {'GONE', int(first)}
  end
  local last = tonumber(string.match(row[1], '^(%d+)'))
  for j, e in ipairs(evs) do
    -- The entry's events have the consecutive seqs ending at its id.
    if last - #evs + j > since then
      if #out - 2 >= len_max then
        return {'GONE', int(first)}
      end
      out[#out + 1] = e
    end
  end
end
return out
