//! The ledger layer's own errors, and their one mapping to wire codes.
//!
//! Owns: [`LedgerError`] (what a ledger flow or money rule refuses, or a
//! backend failure with its source) and the single
//! `From<LedgerError> for crate::error::Error`. Must not: log (the edge
//! logs once) or build wire errors anywhere else in the ledger.

use crate::error::{Error, ErrorCode};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database failed (connection, query, decoding a row).
    #[error("ledger backend failed")]
    Backend(#[from] sqlx::Error),
    /// The operation's parameters are invalid (amounts, missing keys).
    #[error("{0}")]
    Invalid(String),
    /// An operation id was already used with other parameters.
    #[error("id `{0}` was already used with other parameters")]
    IdReused(String),
    /// An operation id was already used by another kind of operation.
    #[error("id `{0}` was used for another kind of operation")]
    IdOtherKind(String),
    /// A room or video id belongs to another creator.
    #[error("`{0}` belongs to another creator")]
    NotOwner(String),
    /// A balance would go below zero (the non-negative CHECK refused it).
    #[error("the account holds less than this operation takes")]
    Overdraft,
    /// Fewer diamonds are out of the payout hold than a cash-out takes.
    #[error(
        "only {available} diamonds are available (settled diamonds are held for payouts.hold_s)"
    )]
    NotAvailable {
        /// Diamonds available now.
        available: i64,
    },
    /// The creator reached `payouts.cashouts_per_day_max`.
    #[error("at most {max} cash-outs per 24 hours (payouts.cashouts_per_day_max)")]
    CashoutsPerDay {
        /// The limit.
        max: i64,
    },
    /// The creator reached the daily cents cap of the cash-out's currency
    /// (`payouts.cashout_cents_per_day_max`, or
    /// `payouts.rates.<currency>.cents_per_day_max`).
    #[error("at most {max} cents of this currency cashed out per 24 hours (payouts.cashout_cents_per_day_max or payouts.rates.<currency>.cents_per_day_max)")]
    CashoutCentsPerDay {
        /// The limit.
        max: i64,
    },
    /// The admin reached `admin.grant_coins_per_day_max`.
    #[error("admin `{admin}` granted {granted} coins in the last 24 hours; at most {max} (admin.grant_coins_per_day_max)")]
    GrantCap {
        /// Who granted.
        admin: String,
        /// Coins granted in the last 24 hours.
        granted: i64,
        /// The limit.
        max: i64,
    },
    /// The ledger's own invariant is broken (a row vanished, an operation
    /// exists without its record, a stored value is out of range).
    #[error("ledger: {0}")]
    Invariant(String),
}

impl LedgerError {
    /// An [`LedgerError::Invalid`] with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        LedgerError::Invalid(message.into())
    }

    /// An [`LedgerError::Invariant`] with `message`.
    pub fn invariant(message: impl std::fmt::Display) -> Self {
        LedgerError::Invariant(message.to_string())
    }
}

impl From<LedgerError> for Error {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Backend(source) => Error::internal_in("ledger", source),
            LedgerError::Invariant(_) => Error::internal_source(e),
            LedgerError::Invalid(_) | LedgerError::IdReused(_) | LedgerError::IdOtherKind(_) => {
                Error::bad_request(e.to_string())
            }
            LedgerError::NotOwner(_) => Error::forbidden(e.to_string()),
            LedgerError::Overdraft | LedgerError::NotAvailable { .. } => {
                Error::new(ErrorCode::InsufficientFunds, e.to_string())
            }
            LedgerError::CashoutsPerDay { .. }
            | LedgerError::CashoutCentsPerDay { .. }
            | LedgerError::GrantCap { .. } => Error::new(ErrorCode::RateLimited, e.to_string()),
        }
    }
}

/// What ledger flows answer.
pub type LedgerResult<T> = std::result::Result<T, LedgerError>;
