//! The payment flows' own failures, and their one mapping to a wire
//! [`Error`].
//!
//! Owns: [`PaymentError`] (Stripe failures with their source, states a
//! payment is refused in) and `From<PaymentError> for Error`.
//! Must not: log (the flow that knows the context logs a refusal; the edge
//! logs what is ours) or put Stripe's words in a client's message.

use crate::error::{Error, ErrorCode};

use super::stripe::StripeError;

/// Why a payment flow failed, before it becomes a wire [`Error`].
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// `stripe.secret_key` is empty: payments are off (`bad_request`).
    #[error("payments are not configured on this server (stripe.secret_key)")]
    NotConfigured,
    /// Stripe refused the request: nothing happened (`bad_request`; Stripe's
    /// words stay in the source, for the log).
    #[error("the payment provider refused the request")]
    StripeRefused(#[source] StripeError),
    /// Stripe did not answer in time or at all: retried later with the same
    /// Idempotency-Key (`internal`).
    #[error("stripe")]
    StripeUnknown(#[source] StripeError),
    /// No coin package with that id (`bad_request`).
    #[error("no coin package `{0}`")]
    UnknownPackage(String),
    /// The creator has no payout account that Stripe pays out to yet
    /// (`bad_request`).
    #[error("payouts are not enabled: finish onboarding first")]
    PayoutsNotEnabled,
    /// The tipped creator cannot receive money yet (`bad_request`).
    #[error("this creator cannot receive tips yet (payouts not enabled)")]
    CreatorNotPayable,
    /// A creator tipping their own room or video (`forbidden`).
    #[error("a creator cannot tip themself")]
    SelfTip,
    /// A cash-out the ledger had a moment ago is gone (`internal`).
    #[error("cash-out {0} vanished")]
    CashoutVanished(String),
}

impl From<StripeError> for PaymentError {
    fn from(e: StripeError) -> Self {
        match e {
            StripeError::Refused { .. } => PaymentError::StripeRefused(e),
            StripeError::Unknown(_) => PaymentError::StripeUnknown(e),
        }
    }
}

impl From<PaymentError> for Error {
    fn from(e: PaymentError) -> Self {
        let code = match &e {
            PaymentError::NotConfigured
            | PaymentError::StripeRefused(_)
            | PaymentError::UnknownPackage(_)
            | PaymentError::PayoutsNotEnabled
            | PaymentError::CreatorNotPayable => ErrorCode::BadRequest,
            PaymentError::SelfTip => ErrorCode::Forbidden,
            PaymentError::StripeUnknown(_) | PaymentError::CashoutVanished(_) => {
                return Error::internal_source(e)
            }
        };
        let message = e.to_string();
        Error::new(code, message).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_the_wire_codes_and_messages_of_before() {
        let refused = StripeError::Refused {
            status: 402,
            kind: "card_error".into(),
            message: "acct_123 secret words".into(),
        };
        let e = Error::from(PaymentError::from(refused));
        assert_eq!(
            e,
            Error::bad_request("the payment provider refused the request")
        );
        assert!(e.report().to_string().contains("acct_123 secret words"));
        let e = Error::from(PaymentError::from(StripeError::Unknown("timeout".into())));
        assert_eq!(e, Error::new(ErrorCode::Internal, "internal error"));
        assert!(e.report().to_string().contains("timeout"), "{}", e.report());
        assert_eq!(
            Error::from(PaymentError::SelfTip),
            Error::forbidden("a creator cannot tip themself")
        );
        assert_eq!(
            Error::from(PaymentError::UnknownPackage("p9".into())),
            Error::bad_request("no coin package `p9`")
        );
    }
}
