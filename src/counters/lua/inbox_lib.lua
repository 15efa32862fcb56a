-- giftstream: event history and a creator's inbox. Prepended (by
-- src/counters/redis/scripts.rs, combo.rs and src/relay/redis/mod.rs) to
-- every script that writes a room's or an inbox's events: gift.lua,
-- gift_message.lua, combo_reap.lua, end_room.lua (through combo_lib.lua)
-- and inbox_publish.lua (tips), so entries and envelopes are built in one
-- place.
--
-- A history stream holds a target's events in seq order. An entry holds
-- one or more events of consecutive seqs (`e` fields, in order: a gift
-- batch writes one entry per room, issue 16) and has the id `<last seq>-0`,
-- so the events after seq s are those of the entries from `<s + 1>-0` on;
-- `ts` is the entry's time. It is trimmed by seq (`MINID ~`: the last
-- hub.history_len_max seqs are kept) and expires after
-- hub.history_age_ms_max without a write. A message on the channel is one
-- event, or a JSON array of the events of one entry.
--
-- An inbox is a hash `{gs}:ib:<creator>` (field `seq`: the last inbox seq;
-- never expires, so seqs never go back), a history stream
-- `{gs}:h:inbox:<creator>` (as above, by inbox seq) and a sharded channel
-- `{gs}:ev:<db>:inbox:<creator>`.

-- Append `events` (consecutive seqs, the last one `last`) to history `hk`
-- as one entry. A stream whose last id is not below it (it outlived its
-- target's seq) is replaced: `pcall`, since callers are past their commit
-- point; a resume into the dropped history gets history_gone.
local function hist_put(hk, len_max, last, events, now)
  local args = {hk, 'MINID', '~', string.format('%.0f', math.max(last - tonumber(len_max) + 1, 0)),
    string.format('%.0f', last) .. '-0'}
  for _, e in ipairs(events) do
    args[#args + 1] = 'e'
    args[#args + 1] = e
  end
  args[#args + 1] = 'ts'
  args[#args + 1] = now
  local added = redis.pcall('XADD', unpack(args))
  if type(added) == 'table' and added.err then
    redis.call('DEL', hk)
    redis.call('XADD', unpack(args))
  end
end

-- Publish `events` on channel `ch`: one event as itself, more as an array.
local function events_publish(ch, events)
  if #events == 1 then
    redis.call('SPUBLISH', ch, events[1])
  else
    redis.call('SPUBLISH', ch, '[' .. table.concat(events, ',') .. ']')
  end
end

-- The envelope's head (without seq and event) for `creator`'s inbox.
local function inbox_head(creator)
  return '{"type":"inbox_event","creator":' .. cjson.encode(creator)
end

-- Put messages `evs` (server messages' JSON, with their `type`) into the
-- inbox of hash `ik`, history `hk`, channel `ch`, envelope head `head`, in
-- order, as one history entry and one publish; `now` is the entry's time.
-- Answers the last inbox seq. `expire`, when given, sets the history's TTL
-- instead of a PEXPIRE here (gift.lua defers it to the end of its call).
local function inbox_put_many(ik, hk, ch, head, evs, now, len_max, age_ms, expire)
  local n = #evs
  local last = redis.call('HINCRBY', ik, 'seq', n)
  if last == n then
    -- A fresh inbox hash: after Redis lost its data the restore set a
    -- floor (`{gs}:ibfloor`, its time in ms), so no seq a client saw
    -- before the loss is handed out again. Same hash tag as `ik`.
    local fk = string.sub(ik, 1, string.find(ik, ':ib:', 1, true)) .. 'ibfloor'
    local floor = tonumber(redis.call('GET', fk) or '0')
    if floor > 0 then
      last = floor + n
      redis.call('HSET', ik, 'seq', string.format('%.0f', last))
    end
  end
  local envs = {}
  for i, ev in ipairs(evs) do
    envs[i] = head .. ',"seq":' .. string.format('%d', last - n + i) .. ',"event":' .. ev .. '}'
  end
  hist_put(hk, len_max, last, envs, now)
  if expire then
    expire(hk, age_ms)
  else
    redis.call('PEXPIRE', hk, age_ms)
  end
  events_publish(ch, envs)
  return last
end

-- One message into an inbox (as inbox_put_many). Answers its inbox seq.
local function inbox_put(ik, hk, ch, head, ev, now, len_max, age_ms, expire)
  return inbox_put_many(ik, hk, ch, head, {ev}, now, len_max, age_ms, expire)
end

