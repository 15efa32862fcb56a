-- giftstream: open a room / register a video, or make sure one exists.
-- KEYS: 1 target hash
-- ARGV: 1 creator  2 seq floor  3 live flag ('1' or '0')
--       4 '1' to set the live flag on an existing target too
--       5 the room's top-gifters zset key ('' for a video)
-- A room whose live (re)opens (live flag going to '1') starts its stats
-- afresh: diamonds this live 0, no top gifters.
-- Answers {'OK'} or {'E', 'forbidden'}.
local creator = redis.call('HGET', KEYS[1], 'creator')
if creator and creator ~= ARGV[1] then
  return {'E', 'forbidden'}
end
local was_live = redis.call('HGET', KEYS[1], 'live')
if not creator then
  redis.call('HSET', KEYS[1], 'creator', ARGV[1], 'seq', '0', 'live', ARGV[3])
elseif ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'live', ARGV[3])
end
local now_live = redis.call('HGET', KEYS[1], 'live')
if ARGV[5] and ARGV[5] ~= '' and now_live == '1' and was_live ~= '1' then
  redis.call('HSET', KEYS[1], 'diamonds', '0')
  redis.call('DEL', ARGV[5])
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if seq < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'seq', ARGV[2])
end
return {'OK'}
