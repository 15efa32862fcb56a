//! The Lua scripts (loaded from `src/counters/lua/`, called by SHA) and
//! how their errors and answers are read.

use super::*;

pub(super) fn redis_err(e: redis::RedisError) -> CountersError {
    metrics::counter!("giftstream_redis_errors_total").increment(1);
    CountersError::Backend(e)
}

/// The error of a script that changes state (a gift, a credit): when the
/// command may have reached Redis and only its reply was lost (the
/// connection dropped or timed out), the script may have run:
/// `outcome_unknown` (the retry with the same id answers what happened).
/// A refused connection or an error answer from Redis changed nothing:
/// `internal`.
pub(super) fn script_err(e: redis::RedisError) -> CountersError {
    let lost_reply = (e.is_io_error() || e.is_timeout() || e.is_connection_dropped())
        && !e.is_connection_refusal();
    if lost_reply {
        metrics::counter!("giftstream_redis_errors_total").increment(1);
        CountersError::OutcomeUnknown(e)
    } else {
        redis_err(e)
    }
}

pub(super) fn parse<T: std::str::FromStr>(v: Option<&String>, what: &str) -> Result<T> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| CountersError::Corrupt(format!("redis: bad `{what}` in a script answer")))
}

pub(super) struct Scripts {
    pub(super) gift: Script,
    pub(super) gift_batch: Script,
    pub(super) credit: Script,
    /// `fence.lua`: raise one loader's load fence.
    pub(super) fence: Script,
    pub(super) target_put: Script,
    pub(super) end_room: Script,
    pub(super) drain: Script,
    pub(super) settled: Script,
    pub(super) pending_len: Script,
    pub(super) scan: Script,
    pub(super) set_value: Script,
    pub(super) last_delivered: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            gift: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/inbox_lib.lua"),
                include_str!("../lua/combo_lib.lua"),
                include_str!("../lua/gift.lua"),
                include_str!("../lua/gift_single.lua")
            )),
            gift_batch: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/inbox_lib.lua"),
                include_str!("../lua/combo_lib.lua"),
                include_str!("../lua/gift.lua"),
                include_str!("../lua/gift_batch.lua")
            )),
            credit: Script::new(include_str!("../lua/credit.lua")),
            fence: Script::new(include_str!("../lua/fence.lua")),
            target_put: Script::new(include_str!("../lua/target_put.lua")),
            end_room: Script::new(concat!(
                include_str!("../lua/inbox_lib.lua"),
                include_str!("../lua/combo_lib.lua"),
                include_str!("../lua/end_room.lua")
            )),
            drain: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/drain.lua")
            )),
            settled: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/settled.lua")
            )),
            pending_len: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/pending_len.lua")
            )),
            scan: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/scan.lua")
            )),
            set_value: Script::new(include_str!("../lua/set_balance.lua")),
            last_delivered: Script::new(concat!(
                include_str!("../lua/stream_lib.lua"),
                include_str!("../lua/last_delivered.lua")
            )),
        }
    }
}
