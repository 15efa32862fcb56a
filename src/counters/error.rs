//! What a counters engine can answer instead of a result, and the one
//! mapping of it to the wire contract's codes.
//!
//! Owns: [`CountersError`] (each refusal and failure of the counters
//! engines, keeping its Redis source) and the one
//! `From<CountersError> for crate::error::Error`.
//! Must not: log (the edge that answers logs once), or know about
//! sockets.

use crate::error::{Error, ErrorCode};
use crate::model::{Target, TargetKind};

/// A refusal or failure of a counters engine. On every refusal (all but
/// [`CountersError::OutcomeUnknown`]) nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    /// The room or video was never opened (`unknown_room`/`unknown_video`).
    #[error("no {} `{}`", kind_name(.0.kind), .0.id)]
    UnknownTarget(Target),
    /// The room's live has ended.
    #[error("room `{0}` is not live")]
    NotLive(String),
    /// A gift to one's own room or video, or a target of another creator.
    #[error("{0}")]
    Forbidden(String),
    /// The wallet holds fewer coins than the gift costs.
    #[error("gift costs {cost} coins, wallet holds {held}")]
    InsufficientFunds {
        /// What the gift costs.
        cost: i64,
        /// What the wallet holds.
        held: i64,
    },
    /// The pending queue holds `counters.pending_len_max` gifts: settlement
    /// is behind (`rate_limited`).
    #[error("settlement is behind; try again shortly")]
    PendingFull,
    /// An amount the engine cannot hold (a balance overflow, a negative
    /// refund): `bad_request`.
    #[error("{0}")]
    Invalid(&'static str),
    /// Redis refused or could not be reached before anything changed.
    #[error("redis: {0}")]
    Backend(#[source] redis::RedisError),
    /// The reply of a script that changes state was lost: it may have run
    /// (`outcome_unknown`; the retry with the same id answers what
    /// happened).
    #[error("redis: {0}")]
    OutcomeUnknown(#[source] redis::RedisError),
    /// A state-changing script answered something unreadable: it may have
    /// run (`outcome_unknown`).
    #[error("{0}")]
    AnswerUnknown(&'static str),
    /// An answer or stored entry that does not read (`internal`).
    #[error("{0}")]
    Corrupt(String),
    /// Redis is being loaded from the ledger (it lost its data): a credit
    /// waits until the load ends (`internal`, nothing changed; retry).
    #[error("redis is being restored from the ledger; retry shortly")]
    Loading,
    /// A refusal from outside the engine, passed through unchanged: the
    /// room's queue (`model::EventSink`: full, or the room not open) or
    /// the ledger read by restore and reconcile (`model::GiftRecords`).
    #[error(transparent)]
    Passed(#[from] Error),
}

fn kind_name(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Room => "room",
        TargetKind::Video => "video",
    }
}

impl CountersError {
    /// The contract code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            CountersError::UnknownTarget(t) => match t.kind {
                TargetKind::Room => ErrorCode::UnknownRoom,
                TargetKind::Video => ErrorCode::UnknownVideo,
            },
            CountersError::NotLive(_) => ErrorCode::RoomNotLive,
            CountersError::Forbidden(_) => ErrorCode::Forbidden,
            CountersError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            CountersError::PendingFull => ErrorCode::RateLimited,
            CountersError::Invalid(_) => ErrorCode::BadRequest,
            CountersError::Backend(_) | CountersError::Corrupt(_) | CountersError::Loading => {
                ErrorCode::Internal
            }
            CountersError::OutcomeUnknown(_) | CountersError::AnswerUnknown(_) => {
                ErrorCode::OutcomeUnknown
            }
            CountersError::Passed(e) => e.code,
        }
    }
}

/// The one mapping of the counters layer to wire codes: refusals keep
/// their message; failures on our side answer the contract's generic
/// message, their cause going to the log.
impl From<CountersError> for Error {
    fn from(e: CountersError) -> Error {
        match e {
            CountersError::Passed(e) => e,
            e => match e.code() {
                ErrorCode::Internal => Error::internal_source(e),
                ErrorCode::OutcomeUnknown => Error::outcome_unknown_source(e),
                code => Error::new(code, e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_code_and_message() {
        let cases = [
            (
                CountersError::UnknownTarget(Target::room("r")),
                ErrorCode::UnknownRoom,
                "no room `r`",
            ),
            (
                CountersError::UnknownTarget(Target::video("v")),
                ErrorCode::UnknownVideo,
                "no video `v`",
            ),
            (
                CountersError::NotLive("r".into()),
                ErrorCode::RoomNotLive,
                "room `r` is not live",
            ),
            (
                CountersError::InsufficientFunds { cost: 5, held: 2 },
                ErrorCode::InsufficientFunds,
                "gift costs 5 coins, wallet holds 2",
            ),
            (
                CountersError::PendingFull,
                ErrorCode::RateLimited,
                "settlement is behind; try again shortly",
            ),
            (
                CountersError::Invalid("balance overflow"),
                ErrorCode::BadRequest,
                "balance overflow",
            ),
        ];
        for (e, code, message) in cases {
            assert_eq!(e.code(), code);
            let wire = Error::from(e);
            assert_eq!((wire.code, wire.message.as_str()), (code, message));
        }
    }

    #[test]
    fn failures_map_to_internal_or_outcome_unknown_and_keep_their_source() {
        let io = || {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            ))
        };
        let backend = CountersError::Backend(io());
        assert!(
            std::error::Error::source(&backend).is_some(),
            "the redis source"
        );
        assert_eq!(Error::from(backend).code, ErrorCode::Internal);
        let lost = CountersError::OutcomeUnknown(io());
        assert!(std::error::Error::source(&lost).is_some());
        assert_eq!(Error::from(lost).code, ErrorCode::OutcomeUnknown);
        assert_eq!(
            Error::from(CountersError::AnswerUnknown("bad")).code,
            ErrorCode::OutcomeUnknown
        );
        let passed = Error::new(
            ErrorCode::RateLimited,
            "the room is busy; try again shortly",
        );
        assert_eq!(Error::from(CountersError::from(passed.clone())), passed);
    }
}
