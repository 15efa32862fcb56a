-- giftstream: stop a room accepting gifts.
-- KEYS: 1 target hash. Answers 1, or 0 when the room is unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'live', '0')
return 1
