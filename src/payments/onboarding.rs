//! Creator onboarding (Connect Express) and payout status.
//!
//! Owns: [`onboard`], [`dashboard_link`] and [`payout_status`].
//! Must not: move money.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ledger::PayoutAccount;

use super::stripe::{
    CreateAccount, CreateAccountCapabilities, CreateAccountCapabilitiesTransfers,
    CreateAccountLink, CreateAccountLinkType, CreateAccountLoginLink, CreateAccountType,
};

use super::{client, metadata, stripe_failed, Payments};

/// A creator's payout status.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutStatus {
    /// Creator.
    pub creator: String,
    /// Connected account, once onboarding started.
    pub account: Option<String>,
    /// Whether Stripe pays out to it (kept current by `account.updated`).
    pub payouts_enabled: bool,
}

/// `GET /v1/creators/me/payouts`.
pub async fn payout_status(state: &Payments<'_>, creator: &str) -> Result<PayoutStatus> {
    let a = state.ledger.payout_account(creator).await?;
    Ok(PayoutStatus {
        creator: creator.to_string(),
        payouts_enabled: a.as_ref().is_some_and(|a| a.payouts_enabled),
        account: a.map(|a| a.account),
    })
}

/// Answer of onboarding: where the creator finishes it.
#[derive(Debug, Clone, Serialize)]
pub struct OnboardAnswer {
    /// `acct_...`.
    pub account: String,
    /// Stripe-hosted onboarding page.
    pub url: String,
    /// Link expiry, seconds since epoch.
    pub expires_at: i64,
    /// Current payout status.
    pub payouts_enabled: bool,
}

/// `POST /v1/creators/me/payouts/onboard`: one Express account per creator
/// (Idempotency-Key `account:{creator}`), then a fresh account link.
pub async fn onboard(state: &Payments<'_>, creator: &str) -> Result<OnboardAnswer> {
    let c = client(state)?;
    let acct: PayoutAccount = match state.ledger.payout_account(creator).await? {
        Some(a) => a,
        None => {
            let mut transfers = CreateAccountCapabilitiesTransfers::new();
            transfers.requested = Some(true);
            let mut capabilities = CreateAccountCapabilities::new();
            capabilities.transfers = Some(transfers);
            let req = CreateAccount::new()
                .type_(CreateAccountType::Express)
                .capabilities(capabilities)
                .metadata(metadata([("giftstream_creator", creator.to_string())]));
            let a = c
                .create_account(&req, &format!("account:{creator}"))
                .await
                .map_err(stripe_failed)?;
            state
                .ledger
                .put_payout_account(creator, a.id.as_str())
                .await?
        }
    };
    let req = CreateAccountLink::new(&acct.account, CreateAccountLinkType::AccountOnboarding)
        .refresh_url(&state.cfg.stripe.onboard_refresh_url)
        .return_url(&state.cfg.stripe.onboard_return_url);
    // A fresh link each time (they expire), one per call even if retried.
    let key = format!("account_link:{creator}:{}", uuid::Uuid::new_v4().simple());
    let link = c
        .create_account_link(&req, &key)
        .await
        .map_err(stripe_failed)?;
    Ok(OnboardAnswer {
        account: acct.account,
        url: link.url,
        expires_at: link.expires_at,
        payouts_enabled: acct.payouts_enabled,
    })
}

/// Answer of [`dashboard_link`].
#[derive(Debug, Clone, Serialize)]
pub struct DashboardLink {
    /// `acct_...`.
    pub account: String,
    /// A single-use link into the account's Stripe Express dashboard.
    pub url: String,
}

/// `POST /v1/creators/me/payouts/dashboard`: a login link into the
/// creator's Express dashboard (payouts, bank details, tax forms); the
/// creator must have started onboarding (`bad_request` otherwise).
pub async fn dashboard_link(state: &Payments<'_>, creator: &str) -> Result<DashboardLink> {
    let c = client(state)?;
    let acct = state
        .ledger
        .payout_account(creator)
        .await?
        .ok_or_else(|| Error::bad_request("no payout account yet: set up payouts first"))?;
    // Login links are single use: a fresh one each call.
    let key = format!("login_link:{creator}:{}", uuid::Uuid::new_v4().simple());
    let link = c
        .create_login_link(&CreateAccountLoginLink::new(acct.account.as_str()), &key)
        .await
        .map_err(stripe_failed)?;
    Ok(DashboardLink {
        account: acct.account,
        url: link.url,
    })
}
