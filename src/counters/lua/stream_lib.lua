-- giftstream: the settlement stream's format. Prepended to every script
-- that writes or reads it: gift.lua (single and batch), drain.lua,
-- settled.lua, scan.lua, pending_len.lua and last_delivered.lua.
--
-- An entry is a gift call's gifts (gift.lua): `len` their count, `rows`
-- their rows as a MessagePack array of arrays of strings, each row
-- {t, s, u, c, r, g, n, co, d, b, ts, k, m} (target key, seq, sender,
-- client id, creator, gift, count, coins, diamonds, balance after, ts ms,
-- ticket, message or ''). An entry written before gift batches were
-- stored as one (one gift, its row as fields) is read as a batch of one.

-- The stream's two gift counts (same hash tag as `stream`): unsettled
-- gifts (gift.lua adds, settled.lua takes off; what
-- counters.pending_len_max bounds) and those of them delivered to a worker
-- (drain.lua adds, settled.lua takes off). src/counters/redis/keys.rs
-- `stream_count_keys` names the same two keys.
local function stream_count_keys(stream)
  return stream .. ':n', stream .. ':d'
end

-- Entry `e` (an XRANGE/XREADGROUP item) as {id, rows}, and its gift count;
-- nil for an entry deleted meanwhile.
local function entry_rows(e)
  if not (e and e[2]) then
    return nil, 0
  end
  local f = {}
  local kv = e[2]
  for j = 1, #kv, 2 do
    f[kv[j]] = kv[j + 1]
  end
  if f.rows then
    return {e[1], f.rows}, tonumber(f.len or '1')
  end
  return {e[1], cmsgpack.pack({{f.t, f.s, f.u, f.c, f.r, f.g, f.n, f.co, f.d, f.b, f.ts, f.k,
    f.m or ''}})}, 1
end

-- The last id stream `stream` delivered to consumer group `group`, nil
-- when the stream or the group does not exist.
local function last_delivered_id(stream, group)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then
    return nil
  end
  for _, g in ipairs(groups) do
    local name, last
    for j = 1, #g, 2 do
      if g[j] == 'name' then
        name = g[j + 1]
      elseif g[j] == 'last-delivered-id' then
        last = g[j + 1]
      end
    end
    if name == group and last then
      return last
    end
  end
  return nil
end

