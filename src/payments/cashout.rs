//! Diamond cash-outs by Transfer, and the recovery of those a crash or an
//! unanswered Transfer left pending.
//!
//! Owns: [`cashout`], [`recover_cashouts`] and how a cash-out is a
//! [`Payout`] (its record, its ledger steps, its metrics); the
//! attempt/lookup/flag state machine that drives it is `super::transfer`'s,
//! shared with contract payouts.
//! Must not: send a Transfer without its attempt's Idempotency-Key, or end
//! a cash-out without the ledger recording it.

use crate::error::{Error, Result};
use crate::ledger::{CashoutEnd, CashoutRecord, Fiat};
use crate::protocol::valid_client_id;

use super::stripe::StripeClient;
use super::transfer::{
    attempt_key, drive, end_payout, new_group, recover_pass, Attempt, Payout, Step,
};

use super::{client, PaymentError, Payments, PaymentsApp};

/// `POST /v1/creators/me/cashouts`: diamonds → pending cash-out in the
/// ledger, then a Transfer (Idempotency-Key: the cash-out's current
/// attempt key, `transfer_group` its group); the outcome completes,
/// reverses or flags it. No answer from Stripe leaves it pending for
/// [`recover_cashouts`]. A replay of a pending cash-out drives it as
/// recovery does (a lookup at Stripe first once its attempt is old).
///
/// `currency` (lower case; None: `stripe.currency`) is one of
/// `stripe.currencies`: the Transfer is made in it, at its rate
/// ([`crate::config::Config::cashout_rate`]), and recorded in its accounts.
pub async fn cashout(
    state: &Payments<'_>,
    creator: &str,
    diamonds: i64,
    id: &str,
    currency: Option<&str>,
) -> Result<CashoutRecord> {
    let c = client(state)?;
    let cfg = &state.cfg.stripe;
    if !valid_client_id(id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    let code = currency.unwrap_or(&cfg.currency);
    let (fiat, rate) = Fiat::parse(code)
        .filter(|f| f.lower() == code)
        .zip(state.cfg.cashout_rate(code))
        .ok_or_else(|| {
            Error::bad_request(format!("currency must be one of {:?}", cfg.currencies))
        })?;
    if diamonds < cfg.cashout_diamonds_min || diamonds > 1_000_000_000_000 {
        return Err(Error::bad_request(format!(
            "diamonds must be at least {}",
            cfg.cashout_diamonds_min
        )));
    }
    let cents = diamonds
        .checked_mul(rate.cents_per_100_diamonds)
        .map(|c| c / 100)
        .ok_or_else(|| Error::bad_request("diamonds out of range"))?;
    if cents <= 0 {
        return Err(Error::bad_request("too few diamonds for one cent"));
    }
    let acct = state
        .ledger
        .payout_account(creator)
        .await?
        .filter(|a| a.payouts_enabled)
        .ok_or(PaymentError::PayoutsNotEnabled)?;
    let group = new_group(CashoutRecord::GROUP_PREFIX);
    let rec = state
        .ledger
        .cashout_begin(&CashoutRecord {
            // A creator name holds no `:` (auth checks `valid_name`): one
            // id per (creator, client id). The ledger's operation keys are
            // typed ([`OpKey`]), never built from it by joining.
            cashout_id: format!("{creator}:{id}"),
            creator: creator.to_string(),
            diamonds,
            amount_cents: cents,
            currency: fiat,
            status: "pending".into(),
            transfer: None,
            transfer_key: attempt_key(&group, 1),
            transfer_group: group,
            attempt: 1,
            ..Default::default()
        })
        .await?;
    if rec.status != "pending" {
        return Ok(rec);
    }
    match drive(state, c, rec, &acct.account).await? {
        Step::Ended(rec) | Step::Pending(rec, _) => Ok(rec),
    }
}

#[async_trait::async_trait]
impl Payout for CashoutRecord {
    const WHAT: &'static str = "cash-out";
    const META: &'static str = "giftstream_cashout";
    const GROUP_PREFIX: &'static str = "giftstream-cashout";
    const MISMATCH_METRIC: &'static str = "giftstream_cashout_mismatch_total";
    const FAILURES_METRIC: &'static str = "giftstream_cashout_recovery_failures_total";
    const STUCK_GAUGE: &'static str = "giftstream_cashouts_stuck";

    fn view(&self) -> Attempt<'_> {
        Attempt {
            id: &self.cashout_id,
            amount_cents: self.amount_cents,
            currency: self.currency,
            group: &self.transfer_group,
            key: &self.transfer_key,
            attempt: self.attempt,
            attempt_ms: self.attempt_ms,
            failures: self.failures,
            next_try_ms: self.next_try_ms,
            status: &self.status,
        }
    }
    async fn load(state: &Payments<'_>, id: &str) -> Result<Self> {
        state
            .ledger
            .cashout(id)
            .await?
            .ok_or_else(|| PaymentError::CashoutVanished(id.to_string()).into())
    }
    async fn new_attempt(
        state: &Payments<'_>,
        id: &str,
        n: i64,
        key: &str,
        now: i64,
    ) -> Result<bool> {
        state.ledger.cashout_new_attempt(id, n, key, now).await
    }
    async fn end(state: &Payments<'_>, id: &str, end: &CashoutEnd) -> Result<()> {
        state.ledger.cashout_end(id, end).await.map(drop)
    }
    async fn defer(state: &Payments<'_>, id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
        state.ledger.cashout_defer(id, failures, next_try_ms).await
    }
    /// A creator without a payout account any more gets the diamonds back.
    async fn recover_one(state: &Payments<'_>, c: &StripeClient, rec: Self) -> Result<Step<Self>> {
        let Some(acct) = state.ledger.payout_account(&rec.creator).await? else {
            return end_payout(state, &rec, CashoutEnd::Reversed).await;
        };
        drive(state, c, rec, &acct.account).await
    }
}

/// One pass over pending cash-outs (at most
/// `stripe.recover_cashouts_len_max`, those due first): each is driven on
/// its own (the same Idempotency-Key, or a lookup at Stripe and a new key
/// once the attempt is old). One that fails (Stripe unanswered, a ledger
/// error) never stops the pass: it is logged, counted
/// (`giftstream_cashout_recovery_failures_total`) and left alone for
/// `stripe.cashout_retry_backoff_ms`, doubled per failure in a row up to
/// `stripe.cashout_retry_backoff_ms_max`; the gauge `giftstream_cashouts_stuck`
/// tells how many pending cash-outs failed their last pass. Answers how
/// many ended now.
pub async fn recover_cashouts(app: &(impl PaymentsApp + ?Sized)) -> Result<usize> {
    let state = &app.payments();
    let Ok(c) = client(state) else {
        return Ok(0);
    };
    let pending = state
        .ledger
        .cashouts_pending(state.cfg.stripe.recover_cashouts_len_max)
        .await?;
    recover_pass(state, c, pending).await
}
