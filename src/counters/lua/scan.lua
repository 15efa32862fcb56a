-- giftstream: read unsettled entries after a stream id (for reconcile).
-- KEYS: 1 settlement stream   ARGV: 1 exclusive start id  2 count
-- Answers {{id, t, s, u, c, r, g, n, co, d, b, ts, k[, m]}, ...}.
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])) do
  local f = {}
  local kv = e[2]
  for j = 1, #kv, 2 do
    f[kv[j]] = kv[j + 1]
  end
  out[#out + 1] = {e[1], f.t, f.s, f.u, f.c, f.r, f.g, f.n, f.co, f.d, f.b, f.ts, f.k, f.m}
end
return out
