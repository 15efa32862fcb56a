-- giftstream: the atomic gift (see src/wallet/redis.rs and docs/REDIS.md).
-- Every key below carries the `{gs}` hash tag, so all of them live in one
-- Redis Cluster slot; the pending-diamonds and idempotency keys derived in
-- the script (ARGV prefixes) carry the same tag.
--
-- (stream_lib.lua, inbox_lib.lua and combo_lib.lua are prepended: the
-- settlement stream's counts, history and the creator's inbox, the streak
-- end.)
-- KEYS: 1 idempotency answer  2 sender's id index (list)  3 sender's wallet
--       4 target hash          5 sender's streak on the target (hash)
--       6 settlement stream    7 ticket counter
--       8 the target's streak index set  9 the streak due zset
-- ARGV: 1 client id  2 ts ms  3 idempotency ttl s  4 ids kept per wallet
--       5 coins  6 diamonds  7 count  8 sender  9 gift id  10 target key
--       11 combo window ms  12 pending len max  13 pending-diamonds prefix
--       14 event channel of the room or video  15 event JSON without seq/combo
--       16 idempotency key prefix of this sender
--       17 room's or video's history stream key  18 history len max
--       19 history age ms max  20 room top-gifters zset key ('' for a video:
--       a video has no live stats)  21 top gifters kept at most
--       22 combo_end JSON head ('' when the target publishes no events)
--       23 due member `<target key>|<sender>`  24 streak TTL ms
--       25 the sender's message ('' for none)
--       26 inbox hash prefix `{gs}:ib:`  27 inbox history prefix
--       `{gs}:h:inbox:`  28 inbox channel prefix `{gs}:ev:<db>:inbox:`
--       (the creator's inbox gets the gift and any streak end it causes;
--       history bounds ARGV 18 and 19)
--       29 streak-end queue len max (`{gs}:whq`, for combo_end webhooks)
--       30 the inbox's event JSON head without seq/combo ('' = ARGV 15;
--       set when the creator's rules kept the message back: the inbox
--       gets the original, the room's event and history none)
--       31 block set prefix `{gs}:blk:` (the creator's blocked users)
-- Answers {'DUP', 'seq:balance:ticket'}, {'OK', seq, balance, ticket, combo}
-- or {'E', code[, detail]}. Every check comes before the first write, so a
-- refused gift changes nothing. Amounts stay below 2^53 (Lua numbers are
-- doubles, exact there); integers are formatted with %d (a C long: 64
-- bits here), never tostring (%.14g), and not %.0f, which costs a third
-- more per call (glibc's exact float printing).
local fmt = string.format
local function int(x) return fmt('%d', x) end
-- A decimal string's number, parsed once per call: the gifts of a batch
-- repeat most of theirs (coins, counts, a millisecond), and tonumber on a
-- string parses it twice (Lua 5.1's isnumber, then tonumber).
local nums = {}
local function num(x)
  local v = nums[x]
  if v == nil then
    v = tonumber(x)
    nums[x] = v
  end
  return v
end

-- What this script call (one gift, or a batch: gift_batch.lua) learned,
-- and the writes it defers to flush() at its end (issue 16: the batch is
-- stored as a batch). A script runs alone, so a value read once and then
-- counted here (a wallet's balance, a target's seq, the ticket, a
-- creator's pending diamonds, the stream's gift count) is the value, and
-- writing it once at the end is the same as writing it per gift. What each
-- gift reads back is kept here (a target's creator, live flag and seq, a
-- creator's blocks); the events go out per room and inbox as one
-- history entry and one publish, the gifts as one settlement entry, the
-- ids as one id-index add per sender. Only the idempotency answers and
-- streaks are written per gift. What is the same for every gift of the
-- call (gift_batch.lua sends it once) is parsed once (`cfg`), and what is
-- the same for every gift to one creator is built once (`creator`).
local memo = {target = {}, pn = nil, exp = {}, cfg = nil, creator = {},
  due = {}, due_key = nil, dia = {}, top = {}, top_keep = {}, bal = {},
  rooms = {}, room_order = {}, inboxes = {}, inbox_order = {}, settle = {}, stream = nil,
  seq = {}, seq_read = {}, pd = {}, ticket = nil, ticket_key = nil, bal_dirty = {}, idz_add = {},
  idz_prefix = {}}

-- The call's shared numbers, parsed at its first gift.
local function call_cfg(ARGV)
  local c = memo.cfg
  if not c then
    local ttl = tonumber(ARGV[3])
    c = {ttl = ttl, ttl_ms = int(ttl * 1000), keep_max = tonumber(ARGV[4]),
      window = tonumber(ARGV[11]), pending_max = tonumber(ARGV[12]),
      streak_ttl = tonumber(ARGV[24]), streak_key_ttl_ms = int(2 * tonumber(ARGV[24]))}
    memo.cfg = c
  end
  return c
end

-- What every gift to `creator` uses: its inbox keys and envelope head,
-- its pending-diamonds key, its block set and whether that set has any
-- member (one SCARD per creator and call: most creators block no one, and
-- then no gift of theirs needs a SISMEMBER), and the senders checked.
local function creator_memo(creator, ARGV)
  local cr = memo.creator[creator]
  if not cr then
    local bk = ARGV[31] .. creator
    cr = {ik = ARGV[26] .. creator, ih = ARGV[27] .. creator, ic = ARGV[28] .. creator,
      ihead = inbox_head(creator), pdk = ARGV[13] .. creator, bk = bk,
      blocks = redis.call('SCARD', bk) > 0, blocked = {}}
    memo.creator[creator] = cr
  end
  return cr
end

-- A target's next seq: counted here from its seq at the call's first use
-- (read with the target's creator and live flag, `seq_read`), written
-- once by flush() (nothing else takes a seq during the call).
function cs_emit.seq(tk)
  local s = memo.seq[tk] or memo.seq_read[tk]
  if not s then
    s = tonumber(redis.call('HGET', tk, 'seq') or '0')
  end
  s = s + 1
  memo.seq[tk] = s
  return s
end

local function pexpire_later(key, ms)
  memo.exp[key] = ms
end

-- A room's (or video's) events of this call, in seq order, written at the
-- end as one history entry and one publish (inbox_lib.lua); streak ends
-- (combo_lib.lua) go the same way, so the room's seqs stay in order.
function cs_emit.room(ch, hk, len_max, age_ms, seq, ev, now)
  local r = memo.rooms[ch]
  if not r then
    r = {hk = hk, len_max = len_max, age_ms = age_ms, evs = {}}
    memo.rooms[ch] = r
    memo.room_order[#memo.room_order + 1] = ch
  end
  r.evs[#r.evs + 1] = ev
  r.last = seq
  r.now = now
end

-- A creator's inbox messages of this call, in order, likewise.
function cs_emit.inbox(ik, hk, ch, head, ev, now, len_max, age_ms)
  local b = memo.inboxes[ik]
  if not b then
    b = {hk = hk, ch = ch, head = head, len_max = len_max, age_ms = age_ms, evs = {}}
    memo.inboxes[ik] = b
    memo.inbox_order[#memo.inbox_order + 1] = ik
  end
  b.evs[#b.evs + 1] = ev
  b.now = now
end

-- The deferred writes, once per key.
local function flush()
  for tk, s in pairs(memo.seq) do
    redis.call('HSET', tk, 'seq', int(s))
  end
  for k, d in pairs(memo.pd) do
    redis.call('INCRBY', k, int(d))
  end
  if memo.ticket_key then
    redis.call('SET', memo.ticket_key, int(memo.ticket))
  end
  for k in pairs(memo.bal_dirty) do
    redis.call('SET', k, int(memo.bal[k]), 'KEEPTTL')
  end
  -- The id index: a list of `<16-digit ticket>:<client id>` in acceptance
  -- order, one RPUSH per sender and call (O(1) per id); past
  -- counters.idempotency_keys_per_wallet_max the oldest ids leave (they
  -- are also the first to expire). An evicted id deletes its answer only
  -- if the answer is still its own (the id may have expired and been used
  -- again since). Trimmed here, at the end of the call, so an id is
  -- remembered at least until then.
  for k, adds in pairs(memo.idz_add) do
    local len = redis.call('RPUSH', k, unpack(adds))
    local keep_max = memo.cfg.keep_max
    if len > keep_max then
      local prefix = memo.idz_prefix[k]
      for _, m in ipairs(redis.call('LPOP', k, len - keep_max)) do
        local sep = string.find(m, ':', 1, true)
        if sep then
          local key = prefix .. string.sub(m, sep + 1)
          local answer = redis.call('GET', key)
          if answer and tonumber(string.match(answer, '[^:]+$')) == tonumber(string.sub(m, 1, sep - 1)) then
            redis.call('DEL', key)
          end
        end
      end
    end
    pexpire_later(k, memo.cfg.ttl_ms)
  end
  for _, ch in ipairs(memo.room_order) do
    local r = memo.rooms[ch]
    hist_put(r.hk, r.len_max, r.last, r.evs, r.now)
    pexpire_later(r.hk, r.age_ms)
    events_publish(ch, r.evs)
  end
  for _, ik in ipairs(memo.inbox_order) do
    local b = memo.inboxes[ik]
    inbox_put_many(ik, b.hk, b.ch, b.head, b.evs, b.now, b.len_max, b.age_ms, pexpire_later)
  end
  -- The call's gifts as one settlement entry: `len` gifts, `rows` theirs
  -- (MessagePack; stream_lib.lua).
  local n = #memo.settle
  if n > 0 then
    redis.call('XADD', memo.stream, '*', 'len', int(n), 'rows', cmsgpack.pack(memo.settle))
    redis.call('INCRBY', (stream_count_keys(memo.stream)), n)
  end
  for k, d in pairs(memo.dia) do
    redis.call('HINCRBY', k, 'diamonds', int(d))
  end
  for k, senders in pairs(memo.top) do
    for sender, d in pairs(senders) do
      redis.call('ZINCRBY', k, int(d), sender)
    end
    -- Bounded: past the limit the smaller half is dropped.
    local keep = memo.top_keep[k]
    local n = redis.call('ZCARD', k)
    if n > keep then
      redis.call('ZREMRANGEBYRANK', k, 0, n - math.max(math.floor(keep / 2), 1) - 1)
    end
  end
  if memo.due_key then
    local args = {}
    for m, score in pairs(memo.due) do
      args[#args + 1] = score
      args[#args + 1] = m
    end
    if #args > 0 then
      redis.call('ZADD', memo.due_key, unpack(args))
    end
  end
  for k, ms in pairs(memo.exp) do
    redis.call('PEXPIRE', k, ms)
  end
end

-- One gift: its own KEYS and ARGV (as below; they shadow the script's).
-- gift_single.lua calls it once; gift_batch.lua once per gift of a batch.
local function gift_one(KEYS, ARGV)
  -- The answer, and the wallet with it on the sender's first gift of
  -- the call (one MGET).
  local seen
  if memo.bal[KEYS[3]] then
    seen = redis.call('GET', KEYS[1])
  else
    local r = redis.call('MGET', KEYS[1], KEYS[3])
    seen = r[1]
    memo.bal[KEYS[3]] = tonumber(r[2] or '0')
  end
  if seen then
    return {'DUP', seen}
  end
  local t = memo.target[KEYS[4]]
  if not t then
    -- With its seq: counted from here by cs_emit.seq (one read, not two).
    t = redis.call('HMGET', KEYS[4], 'creator', 'live', 'seq')
    memo.target[KEYS[4]] = t
    memo.seq_read[KEYS[4]] = tonumber(t[3] or '0')
  end
  if not t[1] then
    return {'E', 'unknown'}
  end
  if t[2] ~= '1' then
    return {'E', 'room_not_live'}
  end
  local creator = t[1]
  if creator == ARGV[8] then
    return {'E', 'forbidden'}
  end
  local cfg = call_cfg(ARGV)
  local cr = creator_memo(creator, ARGV)
  if cr.blocks then
    local blocked = cr.blocked[ARGV[8]]
    if blocked == nil then
      blocked = redis.call('SISMEMBER', cr.bk, ARGV[8]) == 1
      cr.blocked[ARGV[8]] = blocked
    end
    if blocked then
      return {'E', 'blocked'}
    end
  end
  local ik, ih, ic, ihead = cr.ik, cr.ih, cr.ic, cr.ihead
  local coins = num(ARGV[5])
  -- A wallet's balance as this call left it (only gifts change it here).
  local held = memo.bal[KEYS[3]]
  if held < coins then
    return {'E', 'insufficient_funds', int(held)}
  end
  if not memo.pn then
    memo.stream = KEYS[6]
    memo.pn = math.max(tonumber(redis.call('GET', (stream_count_keys(KEYS[6]))) or '0'), 0)
  end
  if memo.pn >= cfg.pending_max then
    return {'E', 'rate_limited'}
  end

  -- Commit point: nothing below refuses.
  -- Money, seqs, tickets and pending diamonds are counted here and
  -- written by flush(): nothing else runs during the call.
  local balance = held - coins
  memo.bal[KEYS[3]] = balance
  memo.bal_dirty[KEYS[3]] = true
  local ts, diamonds, count = num(ARGV[2]), num(ARGV[6]), num(ARGV[7])
  local window = cfg.window
  -- The sender's streak on this target: a different gift, or one after the
  -- window, ends it first (its combo_end takes the seq before this gift's).
  local prev = redis.call('HMGET', KEYS[5], 'g', 'lt', 'n', 'co', 'd', 'xp')
  local since = prev[1] and ts - num(prev[2] or '0')
  if since and since > cfg.streak_ttl then
    -- Past its expiry (`lt` + `tl`, combo_lib.lua): gone, as if its key
    -- had expired; the HSET below overwrites every field.
    prev = {false}
  elseif since and (prev[1] ~= ARGV[9] or since > window) then
    combo_end_streak(KEYS[5], KEYS[4], KEYS[8], KEYS[9], ARGV[23], ARGV[8], ts, ts)
    prev = {false}
  end
  local seq = cs_emit.seq(KEYS[4])
  local sseq, sdue = int(seq), int(ts + window)
  local pdk = cr.pdk
  memo.pd[pdk] = (memo.pd[pdk] or 0) + diamonds
  if not memo.ticket then
    memo.ticket_key = KEYS[7]
    memo.ticket = tonumber(redis.call('GET', KEYS[7]) or '0')
  end
  memo.ticket = memo.ticket + 1
  local ticket = memo.ticket

  -- The streak: one HSET with the new totals (read by the HMGET above)
  -- rather than an HINCRBY per total. It expires `tl` (ARGV 24) after its
  -- last gift `lt`; its key's TTL is set with as much again to spare and
  -- renewed only once that spare is spent (`xp`: when it was last set),
  -- so the key outlives the streak at one PEXPIRE per ARGV 24 instead of
  -- one per gift, and every reader treats a streak past `lt` + `tl` as
  -- gone.
  local combo, scount
  if prev[1] then
    combo = num(prev[3] or '0') + count
    scount = int(combo)
    local co, d = int(num(prev[4] or '0') + coins), int(num(prev[5] or '0') + diamonds)
    if ts - num(prev[6] or '0') > cfg.streak_ttl then
      redis.call('HSET', KEYS[5], 'n', scount, 'co', co, 'd', d,
        'sl', sseq, 'lt', ARGV[2], 'du', sdue, 'xp', ARGV[2], 'tl', ARGV[24])
      pexpire_later(KEYS[5], cfg.streak_key_ttl_ms)
    else
      redis.call('HSET', KEYS[5], 'n', scount, 'co', co, 'd', d,
        'sl', sseq, 'lt', ARGV[2], 'du', sdue)
    end
  else
    combo, scount = count, ARGV[7]
    redis.call('HSET', KEYS[5], 'g', ARGV[9], 'n', ARGV[7], 'co', ARGV[5], 'd', ARGV[6],
      'sf', sseq, 'sl', sseq, 'lt', ARGV[2], 'du', sdue, 'xp', ARGV[2], 'tl', ARGV[24],
      'j', ARGV[22], 'ch', ARGV[14], 'h', ARGV[17], 'hl', ARGV[18], 'ha', ARGV[19],
      'ik', ik, 'ih', ih, 'ic', ic, 'ij', ihead, 'wm', ARGV[29])
    redis.call('SADD', KEYS[8], ARGV[8])
    pexpire_later(KEYS[5], cfg.streak_key_ttl_ms)
  end
  pexpire_later(KEYS[8], ARGV[24])
  memo.due_key = KEYS[9]
  memo.due[ARGV[23]] = sdue
  pexpire_later(KEYS[9], ARGV[24])

  local sbal, sticket = int(balance), int(ticket)
  local scombo = combo > 4294967295 and '4294967295' or scount
  -- Its settlement row (drain.lua's order; flush() writes the call's rows).
  memo.settle[#memo.settle + 1] = {ARGV[10], sseq, ARGV[8], ARGV[1], creator, ARGV[9], ARGV[7],
    ARGV[5], ARGV[6], sbal, ARGV[2], sticket, ARGV[25]}
  memo.pn = memo.pn + 1

  local answer = sseq .. ':' .. sbal .. ':' .. sticket
  redis.call('SET', KEYS[1], answer, 'EX', cfg.ttl)
  -- Its id into the sender's id index, pushed (and trimmed) by flush().
  local adds = memo.idz_add[KEYS[2]]
  if not adds then
    adds = {}
    memo.idz_add[KEYS[2]] = adds
    memo.idz_prefix[KEYS[2]] = ARGV[16]
  end
  adds[#adds + 1] = fmt('%016d:%s', ticket, ARGV[1])

  if ARGV[14] ~= '' then
    local event = ARGV[15] .. ',"seq":' .. sseq .. ',"combo":' .. scombo .. '}'
    cs_emit.room(ARGV[14], ARGV[17], ARGV[18], ARGV[19], seq, event, ARGV[2])
    local top = ARGV[20]
    if top ~= '' then
      -- This live's stats: diamonds and top gifters, added up per call and
      -- written by flush() (bounded there: past the limit the smaller half
      -- is dropped, amortized O(log n) per gift).
      local d = diamonds
      memo.dia[KEYS[4]] = (memo.dia[KEYS[4]] or 0) + d
      local senders = memo.top[top]
      if not senders then
        senders = {}
        memo.top[top] = senders
        memo.top_keep[top] = tonumber(ARGV[21])
      end
      senders[ARGV[8]] = (senders[ARGV[8]] or 0) + d
    end
    -- The creator's inbox: the event as a viewer sees it (with its type).
    local ievent = event
    if ARGV[30] ~= '' then
      ievent = ARGV[30] .. ',"seq":' .. sseq .. ',"combo":' .. scombo .. '}'
    end
    cs_emit.inbox(ik, ih, ic, ihead, '{"type":"gift_event",' .. string.sub(ievent, 2),
      ARGV[2], ARGV[18], ARGV[19])
  end
  return {'OK', sseq, sbal, sticket, scombo}
end
