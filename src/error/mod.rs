//! The one error type of giftstream and its mapping to the wire contract.
//!
//! Owns: [`ErrorCode`] (the contract's closed list of codes), [`Error`]
//! (code + human message), and the HTTP status each code maps to.
//! Must not: know about sockets or storage; every layer converts its own
//! failures into an [`Error`] before it reaches a client.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The error codes of wire contract v1, serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, malformed, expired or wrongly signed token.
    Unauthorized,
    /// Authenticated, but the role or the owner does not allow this.
    Forbidden,
    /// The request is malformed: not JSON, a wrong type, out of range.
    BadRequest,
    /// The gift id is not in the catalog.
    UnknownGift,
    /// The room was never opened.
    UnknownRoom,
    /// The room exists but its live has ended.
    RoomNotLive,
    /// The wallet holds fewer coins than the gift costs.
    InsufficientFunds,
    /// A configured limit was reached; try again later.
    RateLimited,
    /// Room history no longer reaches back to the requested seq.
    HistoryGone,
    /// The video was never registered.
    UnknownVideo,
    /// A failure on our side before anything was changed: the request had
    /// no effect.
    Internal,
    /// A failure on our side after the request may have taken effect (a
    /// reply lost after the gift script ran, a ledger ack that timed out):
    /// retrying with the same id is safe and answers the original outcome.
    OutcomeUnknown,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownGift => "unknown_gift",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::RoomNotLive => "room_not_live",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::HistoryGone => "history_gone",
            ErrorCode::UnknownVideo => "unknown_video",
            ErrorCode::Internal => "internal",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::BadRequest => 400,
            ErrorCode::UnknownGift | ErrorCode::UnknownRoom | ErrorCode::UnknownVideo => 404,
            ErrorCode::RoomNotLive => 409,
            ErrorCode::InsufficientFunds => 402,
            ErrorCode::RateLimited => 429,
            ErrorCode::HistoryGone => 410,
            ErrorCode::Internal => 500,
            ErrorCode::OutcomeUnknown => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed error: a contract code and a message meant for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// Which contract code this is.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// `bad_request` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::BadRequest, message)
    }

    /// `unauthorized` with a message.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unauthorized, message)
    }

    /// `forbidden` with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Forbidden, message)
    }

    /// `internal`: logs the cause and answers a message that leaks nothing.
    /// It claims nothing about the request's effect: a caller that knows
    /// the request may have taken effect answers [`Error::outcome_unknown`].
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Error::new(ErrorCode::Internal, "internal error")
    }
}

impl Error {
    /// The message of `outcome_unknown`.
    pub const OUTCOME_UNKNOWN: &'static str =
        "the request may or may not have taken effect; retrying with the same id is safe";

    /// `outcome_unknown`: the request may have taken effect.
    pub fn outcome_unknown() -> Self {
        Error::new(ErrorCode::OutcomeUnknown, Error::OUTCOME_UNKNOWN)
    }

    /// `outcome_unknown`, logging the cause.
    pub fn outcome_unknown_because(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "outcome unknown");
        Error::outcome_unknown()
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::internal(format_args!("ledger: {e}"))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::internal(format_args!("redis: {e}"))
    }
}
