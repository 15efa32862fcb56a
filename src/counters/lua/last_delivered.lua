-- giftstream: the settlement group's last delivered stream id ('' when
-- the stream or the group does not exist). Entries after it were never
-- handed to a worker, so they cannot be in the ledger yet.
-- KEYS: 1 settlement stream   ARGV: 1 group
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then
  return ''
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
  if name == ARGV[1] and last then
    return last
  end
end
return ''
