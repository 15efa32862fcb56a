//! The one error type of giftstream and its mapping to the wire contract.
//!
//! Owns: [`ErrorCode`] (the contract's closed list of codes), [`Error`]
//! (code + human message + an optional source chain for the log), the HTTP
//! status each code maps to, and the one log line an edge writes
//! ([`Error::log_at_edge`]).
//! Must not: know about sockets or storage; log when an error is made
//! (constructors never log: the HTTP and WebSocket edges log once, as they
//! answer); every layer converts its own failures into an [`Error`] before
//! it reaches a client.

use std::fmt;
use std::sync::Arc;

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
    /// The request is refused by the current state of what it acts on (a
    /// campaign that is not a draft any more, an application already
    /// accepted); the message names the state. An addition (HTTP only).
    Conflict,
    /// The caller does not meet a requirement yet (the marketplace's
    /// followers or payouts); the answer's `missing` says what is left. An
    /// addition (HTTP only).
    NotEligible,
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
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotEligible => "not_eligible",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::NotEligible => 403,
            ErrorCode::BadRequest => 400,
            ErrorCode::UnknownGift | ErrorCode::UnknownRoom | ErrorCode::UnknownVideo => 404,
            ErrorCode::RoomNotLive | ErrorCode::Conflict => 409,
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

/// A cause kept for the log: an error, or words when the caller had only
/// those.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A typed error: a contract code and a message meant for a person, plus
/// (for failures on our side) the source chain the edge logs.
///
/// Equality compares the code and the message only: the source is for the
/// log, never for the client.
#[derive(Clone)]
pub struct Error {
    /// Which contract code this is.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
    /// Why, for the log (never sent): logged once by the edge that answers
    /// the error ([`Error::log_at_edge`]).
    pub source: Option<Source>,
    /// Fields added to the answer's body next to `code` and `message`
    /// (e.g. `missing` of `not_eligible`); none for most errors.
    pub details: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.code).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", &Chain(Some(&**s)));
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.message == other.message
    }
}

impl Eq for Error {}

/// Words standing in for a source error (`Error::internal("...")`).
#[derive(Debug)]
struct Cause(String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

/// A source error with words saying where it came from (`ledger`,
/// `redis`): displayed as the words, its source the error.
#[derive(Debug)]
struct Context<E> {
    what: &'static str,
    error: E,
}

impl<E: std::error::Error + 'static> fmt::Display for Context<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Context<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// An error and its sources, joined by `: `.
struct Chain<'a>(Option<&'a (dyn std::error::Error + 'static)>);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut next = self.0;
        let mut first = true;
        while let Some(e) = next {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{e}")?;
            first = false;
            next = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// [`Error::report`]: the code, the message and the whole source chain.
pub struct Report<'a>(&'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        if let Some(s) = &self.0.source {
            write!(f, ": {}", Chain(Some(&**s)))?;
        }
        Ok(())
    }
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
            details: None,
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

    /// `internal`, keeping `cause` (words) as its source for the edge's
    /// log, and answering a message that leaks nothing. Logs nothing. It
    /// claims nothing about the request's effect: a caller that knows the
    /// request may have taken effect answers [`Error::outcome_unknown`].
    pub fn internal(cause: impl fmt::Display) -> Self {
        Error::new(ErrorCode::Internal, "internal error").with_cause(cause)
    }

    /// `internal` with `source` (and its chain) kept for the edge's log.
    pub fn internal_source(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::new(ErrorCode::Internal, "internal error").with_source(source)
    }

    /// `internal` with `source`, logged as `what: source: ...`.
    pub fn internal_in(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::internal_source(Context {
            what,
            error: source,
        })
    }

    /// This error with `key: value` in its answer's body.
    pub fn with_detail(mut self, key: &str, value: serde_json::Value) -> Self {
        let mut m = self.details.as_deref().cloned().unwrap_or_default();
        m.insert(key.to_string(), value);
        self.details = Some(Arc::new(m));
        self
    }

    /// This error with `source` as its source (replacing any).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// This error with `cause` (words) as its source (replacing any).
    pub fn with_cause(self, cause: impl fmt::Display) -> Self {
        self.with_source(Cause(cause.to_string()))
    }

    /// Whether the edge logs this error: a failure on our side
    /// (`internal`, `outcome_unknown`); the others are the client's.
    pub fn is_ours(&self) -> bool {
        matches!(self.code, ErrorCode::Internal | ErrorCode::OutcomeUnknown)
    }

    /// The code, the message and the source chain, for a log line (never
    /// for a client).
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// Called once by an edge (`edge`: `http`, `ws`) as it answers this
    /// error: logs a failure on our side with its whole source chain;
    /// client errors are not logged.
    pub fn log_at_edge(&self, edge: &'static str) {
        if self.is_ours() {
            let cause = Chain(self.source.as_deref().map(|s| s as _));
            tracing::error!(edge, code = %self.code, %cause, "{}", self.message);
        }
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

    /// `outcome_unknown`, keeping `cause` (words) for the edge's log. Logs
    /// nothing.
    pub fn outcome_unknown_because(cause: impl fmt::Display) -> Self {
        Error::outcome_unknown().with_cause(cause)
    }

    /// `outcome_unknown` with `source` (and its chain) kept for the edge's
    /// log.
    pub fn outcome_unknown_source(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::outcome_unknown().with_source(source)
    }

    /// This error turned `outcome_unknown` (a failure after the request may
    /// have taken effect), keeping its source.
    pub fn into_outcome_unknown(self) -> Self {
        Error {
            source: self.source,
            ..Error::outcome_unknown()
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::internal_in("ledger", e)
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::internal_in("redis", e)
    }
}

/// What tests use to see the error lines logged.
#[cfg(test)]
pub(crate) mod test_log {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    /// Collects every ERROR event as one line of its fields.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Collect {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if *event.metadata().level() == tracing::Level::ERROR {
                let mut line = Line(String::new());
                event.record(&mut line);
                self.0.lock().unwrap().push(line.0);
            }
        }
    }

    /// Run `f` on this thread with a subscriber that records ERROR events;
    /// answers those lines and what `f` answered.
    pub(crate) fn errors_logged<T>(f: impl FnOnce() -> T) -> (Vec<String>, T) {
        let collect = Collect::default();
        let subscriber = tracing_subscriber::registry().with(collect.clone());
        let out = tracing::subscriber::with_default(subscriber, f);
        let lines = collect.0.lock().unwrap().clone();
        (lines, out)
    }
}

#[cfg(test)]
mod tests {
    use super::test_log::errors_logged;
    use super::*;

    #[test]
    fn constructors_log_nothing() {
        let (logged, errors) = errors_logged(|| {
            vec![
                Error::internal("boom"),
                Error::internal_source(std::io::Error::other("io")),
                Error::internal_in("ledger", std::io::Error::other("io")),
                Error::outcome_unknown_because("late"),
                Error::outcome_unknown_source(std::io::Error::other("io")),
                Error::from(redis::RedisError::from(std::io::Error::other("down"))),
                Error::internal("x").into_outcome_unknown(),
            ]
        });
        assert!(logged.is_empty(), "{logged:?}");
        assert_eq!(errors.len(), 7);
    }

    #[test]
    fn log_at_edge_logs_ours_once_with_the_chain() {
        let e = Error::internal_in("ledger", std::io::Error::other("disk on fire"));
        let (logged, ()) = errors_logged(|| e.log_at_edge("ws"));
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(logged[0].contains("ledger: disk on fire"), "{logged:?}");
        assert!(logged[0].contains("edge=\"ws\""), "{logged:?}");
        let (logged, ()) = errors_logged(|| Error::bad_request("no").log_at_edge("ws"));
        assert!(logged.is_empty(), "{logged:?}");
    }

    #[test]
    fn the_source_stays_off_the_wire_and_out_of_equality() {
        let e = Error::internal("secret cause");
        assert_eq!(e, Error::new(ErrorCode::Internal, "internal error"));
        assert_eq!(e.to_string(), "internal: internal error");
        assert_eq!(
            e.report().to_string(),
            "internal: internal error: secret cause"
        );
        let kept = e.clone().into_outcome_unknown();
        assert_eq!(kept.code, ErrorCode::OutcomeUnknown);
        assert_eq!(
            std::error::Error::source(&kept).map(|s| s.to_string()),
            Some("secret cause".to_string())
        );
    }
}
