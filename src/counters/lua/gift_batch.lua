-- giftstream: many gifts in one script call (issue 16: the fixed cost of a
-- script call, ~40 arguments parsed and turned into Lua strings, the
-- reply, is paid once per batch). Appended to inbox_lib.lua, combo_lib.lua
-- and gift.lua. Each gift runs gift_one exactly as a call of its own would,
-- in the order given, so every guarantee of a single gift holds per gift
-- (its checks come before its first write; a refused gift changes
-- nothing) and the batch is one atomic step.
-- KEYS: 9 per gift, in gift.lua's order.
-- ARGV: 1 the number of gifts, then 31 per gift, in gift.lua's order.
-- Answers one gift.lua answer per gift, in order. The writes gift.lua
-- defers (TTLs, live stats, due times) are done once, at the end.
local n = tonumber(ARGV[1])
local out = {}
for i = 0, n - 1 do
  local k, a = {}, {}
  for j = 1, 9 do
    k[j] = KEYS[i * 9 + j]
  end
  local base = 1 + i * 31
  for j = 1, 31 do
    a[j] = ARGV[base + j]
  end
  out[i + 1] = gift_one(k, a)
end
flush()
return out
