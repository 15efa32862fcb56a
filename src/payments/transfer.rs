//! Payouts by Transfer, driven to their end through attempts: the rules
//! shared by diamond cash-outs (`super::cashout`) and marketplace contract
//! payouts (`super::contract`).
//!
//! Owns: the attempt/lookup/flag state machine that drives one pending
//! payout ([`drive`]: the same Idempotency-Key while Stripe may remember
//! it; once the attempt is older than `stripe.transfer_lookup_after_s`, a
//! lookup at Stripe by `transfer_group`, then a new attempt under a new
//! key), and the bounded recovery pass over pending payouts with its
//! backoff ([`recover_pass`]). What a payout is and how the ledger records
//! it is the [`Payout`] trait, implemented by each kind.
//! Must not: send a Transfer without its attempt's Idempotency-Key, or end
//! a payout without the ledger recording it.

use async_trait::async_trait;

use crate::error::Result;
use crate::ledger::CashoutEnd;
use crate::model::Fiat;
use crate::protocol::now_ms;

use super::stripe::{currency, CreateTransfer, ListTransfer, StripeClient, StripeError, Transfer};
use super::{metadata, Payments};

/// A payout the ledger records through attempts (a cash-out, a contract's
/// payout): what [`drive`] reads of it and how it records each step.
#[async_trait]
pub(super) trait Payout: Sized + Send + Sync + 'static {
    /// What it is called in logs (`cash-out`).
    const WHAT: &'static str;
    /// The Transfer's metadata key naming it (`giftstream_cashout`).
    const META: &'static str;
    /// Prefix of a new `transfer_group` (`giftstream-cashout`).
    const GROUP_PREFIX: &'static str;
    /// Counter of Transfers that do not match.
    const MISMATCH_METRIC: &'static str;
    /// Counter of recovery failures.
    const FAILURES_METRIC: &'static str;
    /// Gauge of pending payouts whose last pass failed.
    const STUCK_GAUGE: &'static str;

    /// What [`drive`] reads of it.
    fn view(&self) -> Attempt<'_>;

    /// Read it again from the ledger.
    async fn load(state: &Payments<'_>, id: &str) -> Result<Self>;
    /// Record attempt `n` under `key`, first sent `now`; false when it
    /// moved on meanwhile.
    async fn new_attempt(
        state: &Payments<'_>,
        id: &str,
        n: i64,
        key: &str,
        now: i64,
    ) -> Result<bool>;
    /// Record its end (once).
    async fn end(state: &Payments<'_>, id: &str, end: &CashoutEnd) -> Result<()>;
    /// Record a failed recovery and its backoff.
    async fn defer(state: &Payments<'_>, id: &str, failures: i64, next_try_ms: i64) -> Result<()>;
    /// Drive it once from a recovery pass (finding its destination).
    async fn recover_one(state: &Payments<'_>, c: &StripeClient, rec: Self) -> Result<Step<Self>>;
}

/// What [`drive`] reads of a payout.
pub(super) struct Attempt<'a> {
    /// Its id (the metadata value).
    pub id: &'a str,
    /// Cents to transfer.
    pub amount_cents: i64,
    /// The Transfer's currency.
    pub currency: Fiat,
    /// Its `transfer_group` (empty: a cash-out started before migration
    /// 0006, sent without one).
    pub group: &'a str,
    /// Idempotency-Key of the current attempt.
    pub key: &'a str,
    /// Current attempt number.
    pub attempt: i64,
    /// When the current attempt was first sent.
    pub attempt_ms: i64,
    /// Recovery failures in a row.
    pub failures: i64,
    /// Recovery leaves it alone until then.
    pub next_try_ms: i64,
    /// Its status as recorded (`pending` until it ends).
    pub status: &'a str,
}

impl Attempt<'_> {
    /// Whether it is still pending.
    pub(super) fn pending(&self) -> bool {
        self.status == "pending"
    }
}

/// The Idempotency-Key of a payout's Transfer attempt `n`: its group
/// (random per payout) and the attempt number — never a client's text.
pub(super) fn attempt_key(group: &str, n: i64) -> String {
    format!("{group}-{n}")
}

/// A new random `transfer_group` with `prefix`.
pub(super) fn new_group(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Where driving a pending payout got.
pub(super) enum Step<P> {
    /// Completed, reversed (failed) or flagged.
    Ended(P),
    /// Still pending: the outcome is unknown (why).
    Pending(P, String),
}

/// Whether Stripe's Transfer is the one this payout asked for.
pub(super) fn transfer_matches<P: Payout>(t: &Transfer, rec: &P, account: &str) -> bool {
    let dest = t.destination.as_ref().map(|d| d.id().as_str());
    t.amount == rec.view().amount_cents
        && dest == Some(account)
        && t.currency.to_string() == rec.view().currency.lower()
}

/// Advance a pending payout one step: when its current attempt was first
/// sent longer ago than `stripe.transfer_lookup_after_s` (Stripe may have
/// forgotten its Idempotency-Key), look its Transfer up at Stripe first —
/// found: complete (or flag, if it does not match); not found: record
/// attempt + 1 with a new key. Then send the Transfer of the current
/// attempt and record its outcome.
pub(super) async fn drive<P: Payout>(
    state: &Payments<'_>,
    c: &StripeClient,
    mut rec: P,
    account: &str,
) -> Result<Step<P>> {
    let lookup_after_ms = (state.cfg.stripe.transfer_lookup_after_s as i64).saturating_mul(1000);
    let now = now_ms();
    if now - rec.view().attempt_ms >= lookup_after_ms {
        let found = match lookup_transfers(c, &rec, account).await {
            Ok(found) => found,
            Err(why) => return Ok(Step::Pending(rec, why)),
        };
        if let Some(t) = found.iter().find(|t| !transfer_matches(t, &rec, account)) {
            return end_payout(state, &rec, flag(&rec, t, account)).await;
        }
        if let Some(t) = found.first() {
            if found.len() > 1 {
                tracing::error!(what = P::WHAT, id = %rec.view().id, transfers = found.len(), "several Transfers for one payout at Stripe: completed with the first; settle the rest by hand");
            }
            tracing::info!(what = P::WHAT, id = %rec.view().id, transfer = %t.id.as_str(), "pending payout's Transfer found at Stripe");
            let end = CashoutEnd::Completed {
                transfer: t.id.as_str().to_string(),
            };
            return end_payout(state, &rec, end).await;
        }
        // Not made at Stripe: a new attempt under a new key (the old key may
        // be forgotten, and reusing it after that could pay twice).
        let group = if rec.view().group.is_empty() {
            // A cash-out started before migration 0006: no group of its own.
            new_group(P::GROUP_PREFIX)
        } else {
            rec.view().group.to_string()
        };
        let n = rec.view().attempt + 1;
        let key = attempt_key(&group, n);
        if !P::new_attempt(state, rec.view().id, n, &key, now).await? {
            // Another node moved it on meanwhile.
            let now_rec = P::load(state, rec.view().id).await?;
            return Ok(if now_rec.view().pending() {
                Step::Pending(now_rec, "another pass is driving it".into())
            } else {
                Step::Ended(now_rec)
            });
        }
        tracing::warn!(what = P::WHAT, id = %rec.view().id, attempt = n, "no Transfer at Stripe for a pending payout: sent again under a new key");
        rec = P::load(state, rec.view().id).await?;
    }
    let mut req = CreateTransfer::new(currency(rec.view().currency.lower()), account)
        .amount(rec.view().amount_cents)
        .metadata(metadata([(P::META, rec.view().id.to_string())]));
    if !rec.view().group.is_empty() {
        // Absent for a cash-out started before migration 0006, so that a
        // retry under its first key sends the same parameters.
        req = req.transfer_group(rec.view().group);
    }
    let end = match c.create_transfer(&req, rec.view().key).await {
        Ok(t) if transfer_matches(&t, &rec, account) => CashoutEnd::Completed {
            transfer: t.id.as_str().to_string(),
        },
        Ok(t) => flag(&rec, &t, account),
        Err(StripeError::Refused { message, kind, .. }) => {
            tracing::warn!(what = P::WHAT, id = %rec.view().id, %kind, %message, "transfer refused");
            CashoutEnd::Reversed
        }
        Err(StripeError::Unknown(why)) => {
            tracing::warn!(what = P::WHAT, id = %rec.view().id, %why, "transfer outcome unknown; stays pending until recovery");
            return Ok(Step::Pending(rec, why));
        }
    };
    end_payout(state, &rec, end).await
}

/// A Transfer that does not match its payout: logged, counted, and the
/// end that flags it.
pub(super) fn flag<P: Payout>(rec: &P, t: &Transfer, account: &str) -> CashoutEnd {
    metrics::counter!(P::MISMATCH_METRIC).increment(1);
    tracing::error!(
        what = P::WHAT,
        id = %rec.view().id,
        transfer = %t.id.as_str(),
        amount = t.amount,
        expected_amount = rec.view().amount_cents,
        destination = ?t.destination.as_ref().map(|d| d.id().as_str().to_string()),
        expected_destination = account,
        "Transfer does not match its payout: flagged; settle it at Stripe by hand"
    );
    CashoutEnd::Flagged {
        transfer: t.id.as_str().to_string(),
    }
}

/// Record `end` and answer the payout as recorded.
pub(super) async fn end_payout<P: Payout>(
    state: &Payments<'_>,
    rec: &P,
    end: CashoutEnd,
) -> Result<Step<P>> {
    P::end(state, rec.view().id, &end).await?;
    let now_rec = P::load(state, rec.view().id).await?;
    Ok(if now_rec.view().pending() {
        Step::Pending(now_rec, "not ended".into())
    } else {
        Step::Ended(now_rec)
    })
}

/// Pages of a Transfer list read at most (100 Transfers each) when a
/// cash-out started before migration 0006 is looked up by destination.
pub(super) const LOOKUP_PAGES_MAX: usize = 10;

/// The payout's Transfers at Stripe: by its `transfer_group`, or, for a
/// cash-out started before migration 0006 (none), the destination's
/// Transfers since shortly before its attempt whose metadata names it.
/// Err (why) when Stripe did not answer or the list was too long to read.
pub(super) async fn lookup_transfers<P: Payout>(
    c: &StripeClient,
    rec: &P,
    account: &str,
) -> std::result::Result<Vec<Transfer>, String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..LOOKUP_PAGES_MAX {
        let mut req = ListTransfer::new().limit(100);
        if rec.view().group.is_empty() {
            req = req
                .destination(account)
                .created(stripe_types::RangeQueryTs::gte(
                    rec.view().attempt_ms / 1000 - 600,
                ));
        } else {
            req = req.transfer_group(rec.view().group);
        }
        if let Some(a) = &after {
            req = req.starting_after(a);
        }
        let page = c.list_transfers(&req).await.map_err(|e| e.to_string())?;
        after = page.data.last().map(|t| t.id.as_str().to_string());
        out.extend(page.data.into_iter().filter(|t| {
            t.metadata.get(P::META).map(String::as_str) == Some(rec.view().id)
                || (!rec.view().group.is_empty()
                    && t.transfer_group.as_deref() == Some(rec.view().group))
        }));
        if !page.has_more || after.is_none() {
            return Ok(out);
        }
    }
    Err(format!(
        "more than {LOOKUP_PAGES_MAX} pages of Transfers to look through"
    ))
}

/// One pass over `pending` payouts (at most the configured length, those
/// due first): each is driven on its own ([`Payout::recover_one`]). One
/// that fails (Stripe unanswered, a ledger error) never stops the pass: it
/// is logged, counted ([`Payout::FAILURES_METRIC`]) and left alone for
/// `stripe.cashout_retry_backoff_ms`, doubled per failure in a row up to
/// `stripe.cashout_retry_backoff_ms_max`; the gauge
/// [`Payout::STUCK_GAUGE`] tells how many failed their last pass. Answers
/// how many ended now.
pub(super) async fn recover_pass<P: Payout>(
    state: &Payments<'_>,
    c: &StripeClient,
    pending: Vec<P>,
) -> Result<usize> {
    let cfg = &state.cfg.stripe;
    let now = now_ms();
    let mut ended = 0;
    let mut stuck = 0usize;
    for rec in pending {
        if rec.view().next_try_ms > now {
            stuck += 1;
            continue;
        }
        let id = rec.view().id.to_string();
        let failures = rec.view().failures;
        let why = match P::recover_one(state, c, rec).await {
            Ok(Step::Ended(after)) => {
                ended += 1;
                tracing::info!(what = P::WHAT, id = %id, status = %after.view().status, "pending payout recovered");
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
        metrics::counter!(P::FAILURES_METRIC).increment(1);
        tracing::warn!(what = P::WHAT, id = %id, failures, retry_in_ms = wait, error = %why, "pending payout stuck; recovery goes on with the others");
        stuck += 1;
        if let Err(e) = P::defer(state, &id, failures, now.saturating_add(wait as i64)).await {
            tracing::warn!(what = P::WHAT, id = %id, error = %e.report(), "payout backoff not recorded");
        }
    }
    metrics::gauge!(P::STUCK_GAUGE).set(stuck as f64);
    Ok(ended)
}
