-- giftstream: ending a combo streak. Prepended (by src/counters/redis/
-- scripts.rs and combo.rs) to every script that ends streaks: gift.lua,
-- combo_reap.lua and end_room.lua, so the event is built in one place.
--
-- A streak is a hash `{gs}:cs:<target key>:<sender>` (gone `tl` = window
-- + counters.combo_end_late_ms_max after its last gift `lt`):
--   g gift  n count  co coins  d diamonds  sf seq_first  sl seq_last
--   lt last gift ts  du due ms (lt + window)
--   tl its lifetime ms (window + counters.combo_end_late_ms_max): past
--     lt + tl the streak is gone, ended or not
--   xp when the key's TTL was last set (gift.lua sets it to twice `tl`
--     and renews it once half is spent, so the key outlives the streak)
--   j the combo_end JSON head without seq and numbers ('' when the target
--     publishes no events: the streak then ends silently, taking no seq)
--   ch event channel  h history stream  hl history len max  ha history age ms
--   ik ih ic ij the creator's inbox hash, history stream, channel and
--     envelope head (inbox_lib.lua; absent on a streak older than inboxes)
--   wm the MAXLEN of `{gs}:whq`, the stream of streak ends that every
--     node's webhook pump moves into the ledger's outbox (combo_end
--     webhooks; consumer group `webhooks`)
-- Each target has an index set `{gs}:csi:<target key>` of its senders with
-- a streak, and `{gs}:cdue` (zset, score = due ms, member
-- `<target key>|<sender>`) indexes every streak for the reapers.
local function cs_int(x) return string.format('%.0f', x) end

-- Whether a streak whose last gift was at `lt` and whose lifetime is `tl`
-- (nil on a streak older than the field, whose key's TTL is its expiry)
-- is gone at `now` ms.
local function streak_gone(lt, tl, now)
  return lt and tl and now - tonumber(lt) > tonumber(tl)
end

-- Drop an expired streak (hash `sk`, index set `ik`, due zset `dk`,
-- member `m`): no event, as if its key had expired.
local function streak_drop(sk, ik, dk, m, sender)
  redis.call('DEL', sk)
  redis.call('ZREM', dk, m)
  redis.call('SREM', ik, sender)
end

-- A streak end's seq and where its event goes: by default taken, written
-- and published at once (history entry, channel, inbox: inbox_lib.lua).
-- gift.lua replaces these with its own, which count seqs in the call and which gather a batch's events per room and inbox and
-- write them at the end of its call, in seq order.
local cs_emit = {}
function cs_emit.seq(tk)
  return redis.call('HINCRBY', tk, 'seq', 1)
end
function cs_emit.room(ch, hk, len_max, age_ms, seq, ev, now)
  hist_put(hk, len_max, seq, {ev}, now)
  redis.call('PEXPIRE', hk, age_ms)
  redis.call('SPUBLISH', ch, ev)
end
function cs_emit.inbox(ik, hk, ch, head, ev, now, len_max, age_ms)
  inbox_put(ik, hk, ch, head, ev, now, len_max, age_ms)
end

-- End the streak in hash `sk` of target hash `tk` (its index set `ik`, the
-- due zset `dk`, member `m`, sender `sender`): the event's `ts` is `ts`,
-- its history entry's time `now`. Answers the streak end's seq, or nil
-- when there is no such streak or its target publishes no events.
local function combo_end_streak(sk, tk, ik, dk, m, sender, ts, now)
  local s = redis.call('HMGET', sk, 'n', 'co', 'd', 'sf', 'sl', 'j', 'ch', 'h', 'hl', 'ha',
    'ik', 'ih', 'ic', 'ij', 'wm')
  redis.call('ZREM', dk, m)
  redis.call('SREM', ik, sender)
  if not s[1] then
    return nil
  end
  redis.call('DEL', sk)
  if not s[6] or s[6] == '' then
    return nil
  end
  local seq = cs_emit.seq(tk)
  local ev = s[6] .. ',"seq":' .. cs_int(seq)
    .. ',"count":' .. cs_int(math.min(tonumber(s[1]), 4294967295))
    .. ',"coins":' .. s[2] .. ',"diamonds":' .. s[3]
    .. ',"seq_first":' .. s[4] .. ',"seq_last":' .. s[5]
    .. ',"ts":' .. cs_int(ts) .. '}'
  cs_emit.room(s[7], s[8], s[9], s[10], seq, ev, cs_int(now))
  if s[14] then
    cs_emit.inbox(s[11], s[12], s[13], s[14], ev, cs_int(now), s[9], s[10])
  end
  -- For combo_end webhooks, in this same step: the queue has the target
  -- hash's hash tag and prefix (`{gs}:t:...` -> `{gs}:whq`).
  local wq = string.sub(tk, 1, string.find(tk, ':t:', 1, true)) .. 'whq'
  redis.call('XADD', wq, 'MAXLEN', '~', s[15] or '100000', '*',
    'c', redis.call('HGET', tk, 'creator') or '', 'e', ev)
  return seq
end

