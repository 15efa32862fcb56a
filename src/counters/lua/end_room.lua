-- giftstream: stop a room accepting gifts, and tell every node.
-- KEYS: 1 target hash.  ARGV: 1 the room's event channel.
-- Answers 1, or 0 when the room is unknown. The `room_ended` message is
-- published in the same atomic step as `live = 0`, so on every node it
-- follows every gift event of the room that was published before it.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'live', '0')
redis.call('SPUBLISH', ARGV[1], '{"type":"room_ended"}')
return 1
