-- giftstream: take one batch of pending gifts for this consumer.
-- First claims entries another (dead) consumer held longer than the idle
-- limit, else reads new ones. Creates the group when it is missing (first
-- start, or after the data was lost).
-- KEYS: 1 settlement stream
-- ARGV: 1 group  2 consumer  3 count  4 claim idle ms  5 claim cursor
-- Answers {next cursor, {{id, t, s, u, c, r, g, n, co, d, b, ts, k[, m]}, ...}}.
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], ARGV[5], 'COUNT', ARGV[3])
local cursor = claimed[1]
local entries = claimed[2]
if #entries == 0 then
  local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
  if read then
    entries = read[1][2]
  end
end
local out = {}
for _, e in ipairs(entries) do
  if e and e[2] then
    local f = {}
    local kv = e[2]
    for j = 1, #kv, 2 do
      f[kv[j]] = kv[j + 1]
    end
    out[#out + 1] = {e[1], f.t, f.s, f.u, f.c, f.r, f.g, f.n, f.co, f.d, f.b, f.ts, f.k, f.m}
  end
end
return {cursor, out}
