-- giftstream: a message that is not a counters engine event (a tip) into a
-- creator's inbox (inbox_lib.lua is prepended).
-- KEYS: 1 the inbox hash  2 the inbox's history stream
-- ARGV: 1 the inbox's channel  2 the creator  3 the message JSON
--       4 now ms  5 history len max  6 history age ms max
-- Answers the message's inbox seq.
return inbox_put(KEYS[1], KEYS[2], ARGV[1], inbox_head(ARGV[2]), ARGV[3],
  ARGV[4], ARGV[5], ARGV[6])
