-- giftstream: the settlement group's last delivered stream id ('' when
-- the stream or the group does not exist). Entries after it were never
-- handed to a worker, so they cannot be in the ledger yet.
-- (stream_lib.lua is prepended.)
-- KEYS: 1 settlement stream   ARGV: 1 group
return last_delivered_id(KEYS[1], ARGV[1]) or ''
