-- giftstream: the atomic gift (see src/wallet/redis.rs and docs/REDIS.md).
-- Every key below carries the `{gs}` hash tag, so all of them live in one
-- Redis Cluster slot; the pending-diamonds and idempotency keys derived in
-- the script (ARGV prefixes) carry the same tag.
--
-- (inbox_lib.lua and combo_lib.lua are prepended: the creator's inbox and
-- the streak end.)
-- KEYS: 1 idempotency answer  2 sender's id index (zset)  3 sender's wallet
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
-- doubles); integers are formatted with %.0f, never tostring.
local function int(x) return string.format('%.0f', x) end

-- What this script call (one gift, or a batch: gift_batch.lua) learned,
-- and the writes it defers to flush() at its end. Only reads that no gift
-- changes are remembered (a target's creator and live flag, a block, the
-- settlement stream's length counted on, an id index's size, a wallet's
-- balance after this call's own debits), and only
-- writes that no gift reads back are deferred (key TTLs, which are the same
-- whenever in the call they are set; the live stats `diamonds` and top
-- gifters; the streaks' due times): money, seqs, tickets and idempotency
-- answers are written by each gift as it runs.
local memo = {target = {}, blocked = {}, xlen = nil, idz = {}, exp = {},
  due = {}, due_key = nil, dia = {}, top = {}, top_keep = {}, ihead = {}, bal = {}}

local function pexpire_later(key, ms)
  memo.exp[key] = ms
end

-- The deferred writes, once per key.
local function flush()
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
      args[#args + 1] = int(score)
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
  local seen = redis.call('GET', KEYS[1])
  if seen then
    return {'DUP', seen}
  end
  local t = memo.target[KEYS[4]]
  if not t then
    t = redis.call('HMGET', KEYS[4], 'creator', 'live')
    memo.target[KEYS[4]] = t
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
  local bk = ARGV[31] .. creator
  local blocked = memo.blocked[bk .. '|' .. ARGV[8]]
  if blocked == nil then
    blocked = redis.call('SISMEMBER', bk, ARGV[8]) == 1
    memo.blocked[bk .. '|' .. ARGV[8]] = blocked
  end
  if blocked then
    return {'E', 'blocked'}
  end
  local ik, ih, ic = ARGV[26] .. creator, ARGV[27] .. creator, ARGV[28] .. creator
  local ihead = memo.ihead[creator]
  if not ihead then
    ihead = inbox_head(creator)
    memo.ihead[creator] = ihead
  end
  local coins = tonumber(ARGV[5])
  -- A wallet's balance as this call left it (only gifts change it here).
  local held = memo.bal[KEYS[3]]
  if not held then
    held = tonumber(redis.call('GET', KEYS[3]) or '0')
  end
  if held < coins then
    return {'E', 'insufficient_funds', int(held)}
  end
  if not memo.xlen then
    memo.xlen = redis.call('XLEN', KEYS[6])
  end
  if memo.xlen >= tonumber(ARGV[12]) then
    return {'E', 'rate_limited'}
  end

  -- Commit point: nothing below refuses.
  local balance = redis.call('DECRBY', KEYS[3], ARGV[5])
  memo.bal[KEYS[3]] = balance
  local ts = tonumber(ARGV[2])
  local window = tonumber(ARGV[11])
  -- The sender's streak on this target: a different gift, or one after the
  -- window, ends it first (its combo_end takes the seq before this gift's).
  local prev = redis.call('HMGET', KEYS[5], 'g', 'lt', 'n', 'co', 'd')
  if prev[1] and (prev[1] ~= ARGV[9] or ts - tonumber(prev[2]) > window) then
    combo_end_streak(KEYS[5], KEYS[4], KEYS[8], KEYS[9], ARGV[23], ARGV[8], ts, ts)
    prev = {false}
  end
  local seq = redis.call('HINCRBY', KEYS[4], 'seq', 1)
  local sseq, sdue = int(seq), int(ts + window)
  redis.call('INCRBY', ARGV[13] .. creator, ARGV[6])
  local ticket = redis.call('INCR', KEYS[7])

  -- The streak: one HSET with the new totals (read by the HMGET above)
  -- rather than an HINCRBY per total.
  local combo
  if prev[1] then
    combo = tonumber(prev[3] or '0') + tonumber(ARGV[7])
    redis.call('HSET', KEYS[5], 'n', int(combo),
      'co', int(tonumber(prev[4] or '0') + coins), 'd', int(tonumber(prev[5] or '0') + tonumber(ARGV[6])),
      'sl', sseq, 'lt', ARGV[2], 'du', sdue)
  else
    combo = tonumber(ARGV[7])
    redis.call('HSET', KEYS[5], 'g', ARGV[9], 'n', ARGV[7], 'co', ARGV[5], 'd', ARGV[6],
      'sf', sseq, 'sl', sseq, 'lt', ARGV[2], 'du', sdue,
      'j', ARGV[22], 'ch', ARGV[14], 'h', ARGV[17], 'hl', ARGV[18], 'ha', ARGV[19],
      'ik', ik, 'ih', ih, 'ic', ic, 'ij', ihead, 'wm', ARGV[29])
    redis.call('SADD', KEYS[8], ARGV[8])
  end
  combo = math.min(combo, 4294967295)
  pexpire_later(KEYS[5], ARGV[24])
  pexpire_later(KEYS[8], ARGV[24])
  memo.due_key = KEYS[9]
  memo.due[ARGV[23]] = ts + window
  pexpire_later(KEYS[9], ARGV[24])

  local sbal, sticket, scombo = int(balance), int(ticket), int(combo)
  local fields = {
    't', ARGV[10], 's', sseq, 'u', ARGV[8], 'c', ARGV[1], 'r', creator,
    'g', ARGV[9], 'n', ARGV[7], 'co', ARGV[5], 'd', ARGV[6], 'b', sbal,
    'ts', ARGV[2], 'k', sticket}
  if ARGV[25] ~= '' then
    fields[#fields + 1] = 'm'
    fields[#fields + 1] = ARGV[25]
  end
  redis.call('XADD', KEYS[6], '*', unpack(fields))
  memo.xlen = memo.xlen + 1

  local ttl = tonumber(ARGV[3])
  local answer = sseq .. ':' .. sbal .. ':' .. sticket
  redis.call('SET', KEYS[1], answer, 'EX', ttl)
  -- The id index: score = ts, member = 16-digit ticket ':' client id, so
  -- ids of one millisecond still leave in acceptance order. An evicted
  -- member deletes its answer only if the answer is still its own (the id
  -- may have expired and been used again since).
  local added = redis.call('ZADD', KEYS[2], ts, string.format('%016.0f', ticket) .. ':' .. ARGV[1])
  -- Expired ids leave only when the index is over its cap (the same ids
  -- are evicted either way: an expired one first, and its answer is gone).
  local kept = memo.idz[KEYS[2]]
  if kept then
    kept = kept + added
  else
    kept = redis.call('ZCARD', KEYS[2])
  end
  local keep_max = tonumber(ARGV[4])
  if kept > keep_max then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. int(ts - ttl * 1000))
    kept = redis.call('ZCARD', KEYS[2])
  end
  if kept > keep_max then
    local old = redis.call('ZPOPMIN', KEYS[2], kept - keep_max)
    for i = 1, #old, 2 do
      local sep = string.find(old[i], ':', 1, true)
      if sep then
        local key = ARGV[16] .. string.sub(old[i], sep + 1)
        local answer = redis.call('GET', key)
        if answer and tonumber(string.match(answer, '[^:]+$')) == tonumber(string.sub(old[i], 1, sep - 1)) then
          redis.call('DEL', key)
        end
      end
    end
  end
  memo.idz[KEYS[2]] = math.min(kept, keep_max)
  pexpire_later(KEYS[2], int(ttl * 1000))

  if ARGV[14] ~= '' then
    local event = ARGV[15] .. ',"seq":' .. sseq .. ',"combo":' .. scombo .. '}'
    -- Room history: entry id `<seq>-0`, so XRANGE by seq is direct. pcall:
    -- this is past the commit point, and an id not above the stream's last
    -- (a stream that outlived its room's seq) must not fail the gift; the
    -- stale history is dropped instead (a resume into it gets history_gone).
    local hist = ARGV[17]
    local id = sseq .. '-0'
    local added = redis.pcall('XADD', hist, 'MAXLEN', '~', ARGV[18], id, 'e', event, 'ts', ARGV[2])
    if type(added) == 'table' and added.err then
      redis.call('DEL', hist)
      redis.call('XADD', hist, 'MAXLEN', '~', ARGV[18], id, 'e', event, 'ts', ARGV[2])
    end
    pexpire_later(hist, ARGV[19])
    local top = ARGV[20]
    if top ~= '' then
      -- This live's stats: diamonds and top gifters, added up per call and
      -- written by flush() (bounded there: past the limit the smaller half
      -- is dropped, amortized O(log n) per gift).
      local d = tonumber(ARGV[6])
      memo.dia[KEYS[4]] = (memo.dia[KEYS[4]] or 0) + d
      local senders = memo.top[top]
      if not senders then
        senders = {}
        memo.top[top] = senders
        memo.top_keep[top] = tonumber(ARGV[21])
      end
      senders[ARGV[8]] = (senders[ARGV[8]] or 0) + d
    end
    redis.call('SPUBLISH', ARGV[14], event)
    -- The creator's inbox: the event as a viewer sees it (with its type).
    local ievent = event
    if ARGV[30] ~= '' then
      ievent = ARGV[30] .. ',"seq":' .. sseq .. ',"combo":' .. scombo .. '}'
    end
    inbox_put(ik, ih, ic, ihead, '{"type":"gift_event",' .. string.sub(ievent, 2),
      ARGV[2], ARGV[18], ARGV[19], pexpire_later)
  end
  return {'OK', sseq, sbal, sticket, scombo}
end
