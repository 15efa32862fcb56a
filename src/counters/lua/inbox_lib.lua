-- giftstream: a creator's inbox. Prepended (by src/counters/redis/scripts.rs,
-- combo.rs and src/relay/redis/mod.rs) to every script that puts an event
-- into one: gift.lua, combo_reap.lua, end_room.lua (through combo_lib.lua)
-- and inbox_publish.lua (tips), so the envelope is built in one place.
--
-- An inbox is a hash `{gs}:ib:<creator>` (field `seq`: the last inbox seq;
-- never expires, so seqs never go back), a history stream
-- `{gs}:h:inbox:<creator>` (entry ids `<inbox seq>-0`, MAXLEN ~
-- hub.history_len_max, PEXPIRE hub.history_age_ms_max) and a sharded
-- channel `{gs}:ev:<db>:inbox:<creator>`. Cost per event: HINCRBY, XADD,
-- PEXPIRE, SPUBLISH.

-- The envelope's head (without seq and event) for `creator`'s inbox.
local function inbox_head(creator)
  return '{"type":"inbox_event","creator":' .. cjson.encode(creator)
end

-- Put message `ev` (a server message's JSON, with its `type`) into the
-- inbox of hash `ik`, history `hk`, channel `ch`, envelope head `head`;
-- `now` is the history entry's time. Answers the inbox seq. `expire`, when
-- given, sets the history's TTL instead of a PEXPIRE here (gift.lua defers
-- it to the end of its call: once per key per batch).
local function inbox_put(ik, hk, ch, head, ev, now, len_max, age_ms, expire)
  local seq = redis.call('HINCRBY', ik, 'seq', 1)
  if seq == 1 then
    -- A fresh inbox hash: after Redis lost its data the restore set a
    -- floor (`{gs}:ibfloor`, its time in ms), so no seq a client saw
    -- before the loss is handed out again. Same hash tag as `ik`.
    local fk = string.sub(ik, 1, string.find(ik, ':ib:', 1, true)) .. 'ibfloor'
    local floor = tonumber(redis.call('GET', fk) or '0')
    if floor > 0 then
      seq = floor + 1
      redis.call('HSET', ik, 'seq', string.format('%.0f', seq))
    end
  end
  local s = string.format('%.0f', seq)
  local env = head .. ',"seq":' .. s .. ',"event":' .. ev .. '}'
  local id = s .. '-0'
  -- Same stale-stream rule as a room's history (gift.lua).
  local added = redis.pcall('XADD', hk, 'MAXLEN', '~', len_max, id, 'e', env, 'ts', now)
  if type(added) == 'table' and added.err then
    redis.call('DEL', hk)
    redis.call('XADD', hk, 'MAXLEN', '~', len_max, id, 'e', env, 'ts', now)
  end
  if expire then
    expire(hk, age_ms)
  else
    redis.call('PEXPIRE', hk, age_ms)
  end
  redis.call('SPUBLISH', ch, env)
  return seq
end

