-- giftstream: many gifts in one script call (issue 16: the fixed cost of a
-- script call, arguments parsed and turned into Lua strings, the reply, is
-- paid once per batch). Appended to stream_lib.lua, inbox_lib.lua,
-- combo_lib.lua and gift.lua. Each gift runs gift_one exactly as a call of its own would,
-- in the order given, so every guarantee of a single gift holds per gift
-- (its checks come before its first write; a refused gift changes
-- nothing) and the batch is one atomic step.
-- The keys and arguments that are the same for every gift of a node (the
-- stream, ticket and due keys; limits, TTLs and key prefixes) come once:
-- KEYS: gift.lua's KEYS 6, 7, 9, then per gift its other 6, in order.
-- ARGV: 1 the number of gifts, then gift.lua's ARGV 3, 4, 11, 12, 13, 18,
--       19, 21, 24, 26, 27, 28, 29, 31, then per gift its other 17, in
--       order (src/counters/redis/batch.rs).
-- Answers one gift.lua answer per gift, in order. The writes gift.lua
-- defers (events, settlement entry, TTLs, live stats, due times) are done
-- once, at the end.
local shared_k = {6, 7, 9}
local shared_a = {3, 4, 11, 12, 13, 18, 19, 21, 24, 26, 27, 28, 29, 31}
local k_tpl, a_tpl = {}, {}
for i, j in ipairs(shared_k) do
  k_tpl[j] = KEYS[i]
end
for i, j in ipairs(shared_a) do
  a_tpl[j] = ARGV[1 + i]
end
local n = tonumber(ARGV[1])
-- One gift's KEYS and ARGV, reused for every gift (gift_one keeps their
-- values, never the tables): the shared positions set once (`tpl`), the
-- others overwritten per gift from `src` after position `at`, in order;
-- answers the new position.
local function refill(t, tpl, len, src, at)
  for j = 1, len do
    if not tpl[j] then
      at = at + 1
      t[j] = src[at]
    end
  end
  return at
end
local k, a = {}, {}
for j, v in pairs(k_tpl) do
  k[j] = v
end
for j, v in pairs(a_tpl) do
  a[j] = v
end
local kc, ac = #shared_k, 1 + #shared_a
local out = {}
for g = 1, n do
  kc = refill(k, k_tpl, 9, KEYS, kc)
  ac = refill(a, a_tpl, 31, ARGV, ac)
  out[g] = gift_one(k, a)
end
flush()
return out
