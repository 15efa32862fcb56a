-- giftstream: take streak ends for combo_end webhooks (every node's pump).
-- First claims entries another (dead) node's pump held longer than the
-- idle limit, else reads new ones. Creates the group when it is missing.
-- KEYS: 1 the streak-end queue `{gs}:whq`
-- ARGV: 1 group  2 consumer  3 count  4 claim idle ms
-- Answers {{id, creator, combo_end JSON}, ...}; entries stay pending in
-- the group until the pump acknowledges them (XACK + XDEL).
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local entries = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', ARGV[3])[2]
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
    out[#out + 1] = {e[1], f.c or '', f.e or ''}
  end
end
return out
