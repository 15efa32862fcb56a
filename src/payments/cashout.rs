//! Diamond cash-outs by Transfer, and the recovery of those a crash or an
//! unanswered Transfer left pending.
//!
//! Owns: [`cashout`], [`recover_cashouts`] and the attempt/lookup/flag
//! state machine that drives one cash-out to its end.
//! Must not: send a Transfer without its attempt's Idempotency-Key, or end
//! a cash-out without the ledger recording it.

use crate::error::{Error, Result};
use crate::ledger::{CashoutEnd, CashoutRecord, Fiat};
use crate::protocol::{now_ms, valid_client_id};

use super::stripe::{currency, CreateTransfer, ListTransfer, StripeClient, StripeError, Transfer};

use super::{client, metadata, PaymentError, Payments, PaymentsApp};

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
    let group = format!("giftstream-cashout-{}", uuid::Uuid::new_v4().simple());
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

/// The Idempotency-Key of a cash-out's Transfer attempt `n`: its group
/// (random per cash-out) and the attempt number — never a client's text.
pub(super) fn attempt_key(group: &str, n: i64) -> String {
    format!("{group}-{n}")
}

/// Where driving a pending cash-out got.
pub(super) enum Step {
    /// Completed, reversed or flagged.
    Ended(CashoutRecord),
    /// Still pending: the outcome is unknown (why).
    Pending(CashoutRecord, String),
}

/// Whether Stripe's Transfer is the one this cash-out asked for.
pub(super) fn transfer_matches(t: &Transfer, rec: &CashoutRecord, account: &str) -> bool {
    let dest = t.destination.as_ref().map(|d| d.id().as_str());
    t.amount == rec.amount_cents
        && dest == Some(account)
        && t.currency.to_string() == rec.currency.lower()
}

/// Advance a pending cash-out one step: when its current attempt was first
/// sent longer ago than `stripe.transfer_lookup_after_s` (Stripe may have
/// forgotten its Idempotency-Key), look its Transfer up at Stripe first —
/// found: complete (or flag, if it does not match); not found: record
/// attempt + 1 with a new key. Then send the Transfer of the current
/// attempt and record its outcome.
pub(super) async fn drive(
    state: &Payments<'_>,
    c: &StripeClient,
    mut rec: CashoutRecord,
    account: &str,
) -> Result<Step> {
    let lookup_after_ms = (state.cfg.stripe.transfer_lookup_after_s as i64).saturating_mul(1000);
    let now = now_ms();
    if now - rec.attempt_ms >= lookup_after_ms {
        let found = match lookup_transfers(c, &rec, account).await {
            Ok(found) => found,
            Err(why) => return Ok(Step::Pending(rec, why)),
        };
        if let Some(t) = found.iter().find(|t| !transfer_matches(t, &rec, account)) {
            return end_cashout(state, &rec, flag(&rec, t, account)).await;
        }
        if let Some(t) = found.first() {
            if found.len() > 1 {
                tracing::error!(cashout = %rec.cashout_id, transfers = found.len(), "several Transfers for one cash-out at Stripe: completed with the first; settle the rest by hand");
            }
            tracing::info!(cashout = %rec.cashout_id, transfer = %t.id.as_str(), "pending cash-out's Transfer found at Stripe");
            let end = CashoutEnd::Completed {
                transfer: t.id.as_str().to_string(),
            };
            return end_cashout(state, &rec, end).await;
        }
        // Not made at Stripe: a new attempt under a new key (the old key may
        // be forgotten, and reusing it after that could pay twice).
        let group = if rec.transfer_group.is_empty() {
            // Started before migration 0006: no group of its own.
            format!("giftstream-cashout-{}", uuid::Uuid::new_v4().simple())
        } else {
            rec.transfer_group.clone()
        };
        let n = rec.attempt + 1;
        let key = attempt_key(&group, n);
        if !state
            .ledger
            .cashout_new_attempt(&rec.cashout_id, n, &key, now)
            .await?
        {
            // Another node moved it on meanwhile.
            let now_rec = reload(state, &rec.cashout_id).await?;
            return Ok(if now_rec.status == "pending" {
                Step::Pending(now_rec, "another pass is driving it".into())
            } else {
                Step::Ended(now_rec)
            });
        }
        tracing::warn!(cashout = %rec.cashout_id, attempt = n, "no Transfer at Stripe for a pending cash-out: sent again under a new key");
        rec = reload(state, &rec.cashout_id).await?;
    }
    let mut req = CreateTransfer::new(currency(rec.currency.lower()), account)
        .amount(rec.amount_cents)
        .metadata(metadata([("giftstream_cashout", rec.cashout_id.clone())]));
    if !rec.transfer_group.is_empty() {
        // Absent for a cash-out started before migration 0006, so that a
        // retry under its first key sends the same parameters.
        req = req.transfer_group(&rec.transfer_group);
    }
    let end = match c.create_transfer(&req, &rec.transfer_key).await {
        Ok(t) if transfer_matches(&t, &rec, account) => CashoutEnd::Completed {
            transfer: t.id.as_str().to_string(),
        },
        Ok(t) => flag(&rec, &t, account),
        Err(StripeError::Refused { message, kind, .. }) => {
            tracing::warn!(cashout = %rec.cashout_id, %kind, %message, "transfer refused; diamonds go back");
            CashoutEnd::Reversed
        }
        Err(StripeError::Unknown(why)) => {
            tracing::warn!(cashout = %rec.cashout_id, %why, "transfer outcome unknown; stays pending until recovery");
            return Ok(Step::Pending(rec, why));
        }
    };
    end_cashout(state, &rec, end).await
}

/// A Transfer that does not match its cash-out: logged, counted, and the
/// end that flags it.
pub(super) fn flag(rec: &CashoutRecord, t: &Transfer, account: &str) -> CashoutEnd {
    metrics::counter!("giftstream_cashout_mismatch_total").increment(1);
    tracing::error!(
        cashout = %rec.cashout_id,
        transfer = %t.id.as_str(),
        amount = t.amount,
        expected_amount = rec.amount_cents,
        destination = ?t.destination.as_ref().map(|d| d.id().as_str().to_string()),
        expected_destination = account,
        "Transfer does not match its cash-out: flagged, diamonds returned; settle it at Stripe by hand"
    );
    CashoutEnd::Flagged {
        transfer: t.id.as_str().to_string(),
    }
}

/// Record `end` and answer the cash-out as recorded.
pub(super) async fn end_cashout(
    state: &Payments<'_>,
    rec: &CashoutRecord,
    end: CashoutEnd,
) -> Result<Step> {
    state.ledger.cashout_end(&rec.cashout_id, &end).await?;
    let now_rec = reload(state, &rec.cashout_id).await?;
    Ok(if now_rec.status == "pending" {
        Step::Pending(now_rec, "not ended".into())
    } else {
        Step::Ended(now_rec)
    })
}

pub(super) async fn reload(state: &Payments<'_>, cashout_id: &str) -> Result<CashoutRecord> {
    state
        .ledger
        .cashout(cashout_id)
        .await?
        .ok_or_else(|| PaymentError::CashoutVanished(cashout_id.to_string()).into())
}

/// Pages of a Transfer list read at most (100 Transfers each) when a
/// cash-out started before migration 0006 is looked up by destination.
pub(super) const LOOKUP_PAGES_MAX: usize = 10;

/// The cash-out's Transfers at Stripe: by its `transfer_group`, or, for a
/// cash-out started before migration 0006 (none), the destination's
/// Transfers since shortly before its attempt whose metadata names it.
/// Err (why) when Stripe did not answer or the list was too long to read.
pub(super) async fn lookup_transfers(
    c: &StripeClient,
    rec: &CashoutRecord,
    account: &str,
) -> std::result::Result<Vec<Transfer>, String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..LOOKUP_PAGES_MAX {
        let mut req = ListTransfer::new().limit(100);
        if rec.transfer_group.is_empty() {
            req = req
                .destination(account)
                .created(stripe_types::RangeQueryTs::gte(rec.attempt_ms / 1000 - 600));
        } else {
            req = req.transfer_group(&rec.transfer_group);
        }
        if let Some(a) = &after {
            req = req.starting_after(a);
        }
        let page = c.list_transfers(&req).await.map_err(|e| e.to_string())?;
        after = page.data.last().map(|t| t.id.as_str().to_string());
        out.extend(page.data.into_iter().filter(|t| {
            t.metadata.get("giftstream_cashout") == Some(&rec.cashout_id)
                || (!rec.transfer_group.is_empty()
                    && t.transfer_group.as_deref() == Some(rec.transfer_group.as_str()))
        }));
        if !page.has_more || after.is_none() {
            return Ok(out);
        }
    }
    Err(format!(
        "more than {LOOKUP_PAGES_MAX} pages of Transfers to look through"
    ))
}

/// One pass over pending cash-outs (at most
/// `stripe.recover_cashouts_len_max`, those due first): each is driven on
/// its own ([`drive`]: the same Idempotency-Key, or a lookup at Stripe and
/// a new key once the attempt is old). One that fails (Stripe unanswered,
/// a ledger error) never stops the pass: it is logged, counted
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
    let cfg = &state.cfg.stripe;
    let pending = state
        .ledger
        .cashouts_pending(cfg.recover_cashouts_len_max)
        .await?;
    let now = now_ms();
    let mut ended = 0;
    let mut stuck = 0usize;
    for rec in pending {
        if rec.next_try_ms > now {
            stuck += 1;
            continue;
        }
        let id = rec.cashout_id.clone();
        let failures = rec.failures;
        let why = match recover_one(state, c, rec).await {
            Ok(Step::Ended(after)) => {
                ended += 1;
                tracing::info!(cashout = %id, status = %after.status, "pending cash-out recovered");
                continue;
            }
            Ok(Step::Pending(_, why)) => why,
            Err(e) => e.report().to_string(),
        };
        let failures = failures + 1;
        let shift = (failures - 1).clamp(0, 30) as u32;
        let wait = cfg
            .cashout_retry_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(cfg.cashout_retry_backoff_ms_max);
        metrics::counter!("giftstream_cashout_recovery_failures_total").increment(1);
        tracing::warn!(cashout = %id, failures, retry_in_ms = wait, error = %why, "pending cash-out stuck; recovery goes on with the others");
        stuck += 1;
        if let Err(e) = state
            .ledger
            .cashout_defer(&id, failures, now.saturating_add(wait as i64))
            .await
        {
            tracing::warn!(cashout = %id, error = %e.report(), "cash-out backoff not recorded");
        }
    }
    metrics::gauge!("giftstream_cashouts_stuck").set(stuck as f64);
    Ok(ended)
}

/// Drive one pending cash-out (a creator without a payout account any more
/// gets the diamonds back).
pub(super) async fn recover_one(
    state: &Payments<'_>,
    c: &StripeClient,
    rec: CashoutRecord,
) -> Result<Step> {
    let Some(acct) = state.ledger.payout_account(&rec.creator).await? else {
        return end_cashout(state, &rec, CashoutEnd::Reversed).await;
    };
    drive(state, c, rec, &acct.account).await
}
