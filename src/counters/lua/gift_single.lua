-- giftstream: one gift per script call (counters.gift_batch_len_max = 1).
-- Appended to stream_lib.lua, inbox_lib.lua, combo_lib.lua and gift.lua.
local answer = gift_one(KEYS, ARGV)
flush()
return answer
