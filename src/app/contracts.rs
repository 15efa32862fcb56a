//! Marketplace contracts after their application was accepted (issue 14
//! item 5): the brand pays (a PaymentIntent), the creator submits the
//! deliverable, the brand approves (a Transfer to the creator), rejects or
//! cancels (a Refund when paid); the creator may cancel too.
//!
//! Owns: who acts on which contract (a brand on its own, a creator on
//! theirs: another's is "no such contract", answered 404), the
//! deliverable's input rules (an `http(s)` URL of at most
//! `marketplace.url_len_max`, a note of at most `marketplace.text_len_max`)
//! and the review time (`marketplace.review_s_max`).
//! Must not: check roles (the HTTP handlers do), hold SQL, or move money
//! itself ([`crate::payments`] does, after the ledger's step).

use serde::Deserialize;

use super::marketplace::{check_field, check_url};
use super::AppState;
use crate::error::{Error, Result};
use crate::ledger::market_states::ContractAction;
use crate::ledger::marketplace::{ApplicationMove, Contract, MarketCursor};
use crate::payments::{self, ContractPayment, PaymentsApp};
use crate::protocol::{check_name, now_ms};

/// The creator's deliverable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverableInput {
    /// `http(s)://` link to the work.
    pub url: String,
    /// A note for the brand.
    #[serde(default)]
    pub note: String,
}

/// A brand's rejection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    /// Why (optional).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Who acts on a contract.
#[derive(Debug, Clone, Copy)]
pub enum Party<'a> {
    /// Its brand.
    Brand(&'a str),
    /// Its creator.
    Creator(&'a str),
}

/// The contract `id` if it is `party`'s, else "no such contract".
pub async fn contract_of(st: &AppState, party: Party<'_>, id: &str) -> Result<Contract> {
    check_name("contract", id)?;
    let k = st.ledger.contract(id).await?;
    match (k, party) {
        (Some(k), Party::Brand(b)) if k.brand == b => Ok(k),
        (Some(k), Party::Creator(c)) if k.creator == c => Ok(k),
        _ => Err(Error::bad_request(format!("no such contract `{id}`"))),
    }
}

/// A brand's contracts, newest first (`len_max` rows).
pub async fn brand_contracts(
    st: &AppState,
    brand: &str,
    len_max: i64,
    after: Option<&MarketCursor>,
) -> Result<Vec<Contract>> {
    st.ledger.brand_contracts(brand, len_max, after).await
}

/// The brand's PaymentIntent for its contract (`conflict` unless
/// `awaiting_payment`; `bad_request` when payments are off).
pub async fn payment(st: &AppState, brand: &str, id: &str) -> Result<ContractPayment> {
    let k = contract_of(st, Party::Brand(brand), id).await?;
    payments::contract_payment(&st.payments(), &k).await
}

/// Accepting an application, answered with its contract and, when
/// payments are configured, the contract's PaymentIntent (`payment`: null
/// when Stripe did not answer; the brand asks again with the payment
/// route).
pub async fn accepted_with_payment(
    st: &AppState,
    moved: ApplicationMove,
) -> Result<serde_json::Value> {
    let payment = match (&moved.contract, st.stripe.is_some()) {
        (Some(k), true) => match payments::contract_payment(&st.payments(), k).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(contract = %k.contract, error = %e.report(), "contract PaymentIntent not created; the brand asks again");
                None
            }
        },
        _ => None,
    };
    let contract = match &moved.contract {
        Some(k) => st.ledger.contract(&k.contract).await?,
        None => None,
    };
    let mut v = serde_json::to_value(ApplicationMove {
        application: moved.application,
        contract,
    })
    .map_err(Error::internal)?;
    if st.stripe.is_some() {
        v["payment"] = serde_json::to_value(payment).map_err(Error::internal)?;
    }
    Ok(v)
}

/// The brand approves, rejects or cancels its contract.
pub async fn brand_release(
    st: &AppState,
    brand: &str,
    id: &str,
    action: ContractAction,
    reason: Option<String>,
) -> Result<Contract> {
    let reason = reason.filter(|r| !r.is_empty());
    if let Some(r) = &reason {
        check_field("reason", r, st.cfg.marketplace.text_len_max, true)?;
    }
    let k = contract_of(st, Party::Brand(brand), id).await?;
    payments::release(&st.payments(), &k.contract, action, reason, None).await
}

/// The creator cancels their contract (before payment, or funded: the
/// brand is refunded).
pub async fn creator_cancel(st: &AppState, creator: &str, id: &str) -> Result<Contract> {
    let k = contract_of(st, Party::Creator(creator), id).await?;
    payments::release(
        &st.payments(),
        &k.contract,
        ContractAction::Cancel,
        None,
        None,
    )
    .await
}

/// The creator submits the deliverable (funded → submitted); the review
/// is due `marketplace.review_s_max` later.
pub async fn submit(
    st: &AppState,
    creator: &str,
    id: &str,
    input: DeliverableInput,
) -> Result<Contract> {
    let m = &st.cfg.marketplace;
    check_url("url", &input.url, m.url_len_max)?;
    if !input.note.is_empty() {
        check_field("note", &input.note, m.text_len_max, true)?;
    }
    let k = contract_of(st, Party::Creator(creator), id).await?;
    let review_ms = (m.review_s_max as i64).saturating_mul(1000);
    st.ledger
        .contract_submit(&k.contract, &input.url, &input.note, now_ms(), review_ms)
        .await
}
