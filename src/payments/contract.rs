//! Marketplace contracts' money through Stripe (issue 14 item 5): the
//! brand's PaymentIntent, its `payment_intent.succeeded` into escrow, the
//! release of the escrow (a Transfer of price − fee to the creator's
//! connected account, or a Refund of the price to the brand), the
//! automatic approval of deliverables whose review is due, the recovery of
//! payouts left pending, and the disputes of the brand's charge.
//!
//! Owns: those flows and their order of effects: the ledger step first
//! (the contract's move and the escrow's postings, one transaction), then
//! Stripe under the payout's Idempotency-Key; a crash or an unanswered
//! request between the two leaves the payout pending for
//! [`recover_contract_payouts`]. A Transfer follows the cash-out's rules
//! (`super::transfer`, the same code); a Refund is re-sent under its one
//! key per contract (Stripe never refunds more than the charge, so a
//! re-sent refund cannot pay twice).
//! Must not: move money on anything but a verified webhook or a Stripe
//! answer; check roles (the app layer does).

use serde::Serialize;

use crate::error::{Error, ErrorCode, Result};
use crate::ledger::escrow::{ContractPaid, DisputeMove, PayoutJob, PayoutKind, Release};
use crate::ledger::market_states::{ContractAction, ContractState};
use crate::ledger::marketplace::Contract;
use crate::ledger::{CashoutEnd, Fiat, StripeEventRef};
use crate::protocol::now_ms;

use super::stripe::{
    currency, CreatePaymentIntent, CreateRefund, PaymentIntentAllowedPaymentMethodTypes,
    StripeClient, StripeError,
};
use super::transfer::{
    attempt_key, drive, end_payout, new_group, recover_pass, Attempt, Payout, Step,
};
use super::webhook::{DisputeFacts, PaymentIntentFacts};
use super::{
    client, metadata, outcome::WebhookOutcome, stripe_failed, Payments, PaymentsApp, META_KIND,
};

/// The metadata key naming a contract on its PaymentIntent, Transfer and
/// Refund.
const META_CONTRACT: &str = "giftstream_contract";

/// What the brand confirms with Stripe.js.
#[derive(Debug, Clone, Serialize)]
pub struct ContractPayment {
    /// `pi_...` (the same for every call of one contract).
    pub payment_intent: String,
    /// For Stripe.js.
    pub client_secret: String,
    /// The price, cents.
    pub amount_cents: i64,
    /// Lower-case currency.
    pub currency: String,
}

/// The Idempotency-Key of a contract's PaymentIntent.
fn payment_key(contract: &str) -> String {
    format!("giftstream-contract-pi-{contract}")
}

/// The Idempotency-Key of a contract's Refund (one per contract).
fn refund_key(contract: &str) -> String {
    format!("giftstream-contract-refund-{contract}")
}

/// The PaymentIntent of an `awaiting_payment` contract (created once: its
/// Idempotency-Key is derived from the contract; metadata
/// `giftstream_kind=contract`, `giftstream_contract=<id>`).
pub async fn contract_payment(state: &Payments<'_>, k: &Contract) -> Result<ContractPayment> {
    let c = client(state)?;
    if k.state != ContractState::AwaitingPayment {
        return Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "the contract is {}: payment is not allowed",
                k.state.as_str()
            ),
        ));
    }
    let fiat = Fiat::parse(&k.currency).ok_or_else(|| {
        Error::bad_request(format!(
            "the contract's currency `{}` cannot be paid here",
            k.currency
        ))
    })?;
    let req = CreatePaymentIntent::new(k.price_cents, currency(fiat.lower()))
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .metadata(metadata([
            (META_KIND, "contract".to_string()),
            (META_CONTRACT, k.contract.clone()),
            ("giftstream_brand", k.brand.clone()),
        ]));
    let pi = c
        .create_payment_intent(&req, &payment_key(&k.contract))
        .await
        .map_err(stripe_failed)?;
    let id = pi.id.as_str().to_string();
    let recorded = state
        .ledger
        .set_contract_payment_intent(&k.contract, &id)
        .await?;
    if recorded != id {
        tracing::error!(contract = %k.contract, recorded = %recorded, new = %id, "a second PaymentIntent for one contract: the first stays");
    }
    Ok(ContractPayment {
        payment_intent: id,
        client_secret: pi.client_secret.unwrap_or_default(),
        amount_cents: pi.amount,
        currency: pi.currency.to_string(),
    })
}

/// `payment_intent.succeeded` of a contract: the escrow is funded (once).
/// A contract cancelled before its payment arrived is refunded at once.
pub(super) async fn contract_paid(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &PaymentIntentFacts,
) -> Result<WebhookOutcome> {
    let contract = pi
        .metadata
        .get(META_CONTRACT)
        .ok_or_else(|| Error::bad_request("metadata.giftstream_contract"))?;
    let id = pi
        .id
        .clone()
        .ok_or_else(|| Error::bad_request("payment_intent.id"))?;
    let paid = ContractPaid {
        event: ev.clone(),
        contract: contract.clone(),
        payment_intent: id,
        amount_cents: pi.amount_received.or(pi.amount).unwrap_or(0),
        currency: pi.currency.clone().unwrap_or_default(),
        refund_key: refund_key(contract),
    };
    let applied = state.ledger.contract_paid(&paid).await?;
    if applied {
        settle(state, contract).await;
    }
    Ok(WebhookOutcome::applied_if(applied))
}

/// Move a contract by `action` (approve, reject, cancel) and, when it held
/// money, pay the payout out (best effort: what Stripe does not answer now
/// stays pending for the recovery pass). `due_by_ms`: only if its review
/// was due by then (the automatic approval).
pub async fn release(
    state: &Payments<'_>,
    contract: &str,
    action: ContractAction,
    reason: Option<String>,
    due_by_ms: Option<i64>,
) -> Result<Contract> {
    let (idem_key, transfer_group) = if action == ContractAction::Approve {
        let group = new_group(PayoutJob::GROUP_PREFIX);
        (attempt_key(&group, 1), group)
    } else {
        (refund_key(contract), String::new())
    };
    let r = Release {
        action,
        fee_bps: state.cfg.marketplace.fee_bps,
        idem_key,
        transfer_group,
        due_by_ms,
        reason,
        now_ms: now_ms(),
    };
    let k = state.ledger.contract_release(contract, &r).await?;
    if k.payout.as_ref().is_some_and(|p| p.status == "pending") {
        settle(state, contract).await;
    }
    Ok(state.ledger.contract(contract).await?.unwrap_or(k))
}

/// Drive a contract's pending payout once, now (errors are logged: the
/// ledger step is committed and the recovery pass goes on with it).
async fn settle(state: &Payments<'_>, contract: &str) {
    let Ok(c) = client(state) else {
        return;
    };
    let job = match state.ledger.contract_payout(contract).await {
        Ok(Some(job)) if job.status == "pending" => job,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(contract, error = %e.report(), "payout not read; the recovery pass drives it");
            return;
        }
    };
    if let Err(e) = PayoutJob::recover_one(state, c, job).await {
        tracing::warn!(contract, error = %e.report(), "payout not driven; the recovery pass drives it");
    }
}

/// Send a contract's Refund under its key and record the outcome.
async fn drive_refund(
    state: &Payments<'_>,
    c: &StripeClient,
    job: PayoutJob,
) -> Result<Step<PayoutJob>> {
    let req = CreateRefund::new()
        .payment_intent(job.payment_intent.clone())
        .amount(job.amount_cents)
        .metadata(metadata([(META_CONTRACT, job.contract.clone())]));
    let end = match c.create_refund(&req, &job.idem_key).await {
        Ok(r) if r.amount == job.amount_cents => CashoutEnd::Completed {
            transfer: r.id.as_str().to_string(),
        },
        Ok(r) => {
            metrics::counter!("giftstream_contract_payout_mismatch_total").increment(1);
            tracing::error!(contract = %job.contract, refund = %r.id.as_str(), amount = r.amount, expected = job.amount_cents, "Refund does not match its contract: flagged; settle it at Stripe by hand");
            CashoutEnd::Flagged {
                transfer: r.id.as_str().to_string(),
            }
        }
        Err(StripeError::Refused { kind, .. }) if kind.contains("charge_already_refunded") => {
            tracing::warn!(contract = %job.contract, "the charge was already refunded: the refund is recorded as made");
            CashoutEnd::Completed {
                transfer: String::new(),
            }
        }
        Err(StripeError::Refused { message, kind, .. }) => {
            tracing::warn!(contract = %job.contract, %kind, %message, "refund refused: the money stays in escrow for an operator");
            CashoutEnd::Reversed
        }
        Err(StripeError::Unknown(why)) => return Ok(Step::Pending(job, why)),
    };
    end_payout(state, &job, end).await
}

#[async_trait::async_trait]
impl Payout for PayoutJob {
    const WHAT: &'static str = "contract payout";
    const META: &'static str = META_CONTRACT;
    const GROUP_PREFIX: &'static str = "giftstream-contract";
    const MISMATCH_METRIC: &'static str = "giftstream_contract_payout_mismatch_total";
    const FAILURES_METRIC: &'static str = "giftstream_contract_payout_recovery_failures_total";
    const STUCK_GAUGE: &'static str = "giftstream_contract_payouts_stuck";

    fn view(&self) -> Attempt<'_> {
        Attempt {
            id: &self.contract,
            key: &self.idem_key,
            group: &self.transfer_group,
            status: &self.status,
            amount_cents: self.amount_cents,
            currency: self.currency,
            attempt: self.attempt,
            attempt_ms: self.attempt_ms,
            next_try_ms: self.next_try_ms,
            failures: self.failures,
        }
    }
    async fn load(state: &Payments<'_>, id: &str) -> Result<Self> {
        state
            .ledger
            .contract_payout(id)
            .await?
            .ok_or_else(|| Error::internal(format!("the payout of contract `{id}` vanished")))
    }
    async fn new_attempt(
        state: &Payments<'_>,
        id: &str,
        n: i64,
        key: &str,
        now: i64,
    ) -> Result<bool> {
        state.ledger.contract_payout_attempt(id, n, key, now).await
    }
    async fn end(state: &Payments<'_>, id: &str, end: &CashoutEnd) -> Result<()> {
        state.ledger.contract_payout_end(id, end).await.map(drop)
    }
    async fn defer(state: &Payments<'_>, id: &str, failures: i64, next_try_ms: i64) -> Result<()> {
        state
            .ledger
            .contract_payout_defer(id, failures, next_try_ms)
            .await
    }
    /// A Transfer to the creator's connected account (none any more: the
    /// payout fails and the money stays in escrow), or the Refund.
    async fn recover_one(state: &Payments<'_>, c: &StripeClient, rec: Self) -> Result<Step<Self>> {
        match rec.kind {
            PayoutKind::Refund => drive_refund(state, c, rec).await,
            PayoutKind::Transfer => {
                let Some(acct) = state.ledger.payout_account(&rec.creator).await? else {
                    return end_payout(state, &rec, CashoutEnd::Reversed).await;
                };
                drive(state, c, rec, &acct.account).await
            }
        }
    }
}

/// One pass over pending contract payouts (at most
/// `stripe.recover_cashouts_len_max`, those due first), with the cash-outs'
/// backoff (`stripe.cashout_retry_backoff_ms`...). Answers how many ended.
pub async fn recover_contract_payouts(app: &(impl PaymentsApp + ?Sized)) -> Result<usize> {
    let state = &app.payments();
    let Ok(c) = client(state) else {
        return Ok(0);
    };
    let pending = state
        .ledger
        .contract_payouts_pending(state.cfg.stripe.recover_cashouts_len_max)
        .await?;
    recover_pass(state, c, pending).await
}

/// The review sweep: approve the submitted contracts whose review is due
/// (at most `marketplace.review_sweep_len_max`, not disputed), each paid
/// out as a brand's approval is; then one recovery pass over pending
/// payouts. Answers how many were approved.
pub async fn approve_due_contracts(app: &(impl PaymentsApp + ?Sized)) -> Result<usize> {
    let state = &app.payments();
    let now = now_ms();
    let due = state
        .ledger
        .contracts_review_due(now, state.cfg.marketplace.review_sweep_len_max)
        .await?;
    let mut approved = 0;
    for id in due {
        match release(state, &id, ContractAction::Approve, None, Some(now)).await {
            Ok(_) => {
                approved += 1;
                tracing::info!(contract = %id, "review due: approved automatically");
            }
            // Moved by its brand (or disputed) meanwhile.
            Err(e) if e.code == ErrorCode::Conflict => {}
            Err(e) => {
                tracing::warn!(contract = %id, error = %e.report(), "automatic approval failed; retried next pass")
            }
        }
    }
    if let Err(e) = recover_contract_payouts(app).await {
        tracing::warn!(error = %e.report(), "contract payout recovery failed; retried next pass");
    }
    Ok(approved)
}

/// A dispute event of a contract's charge (`charge.dispute.created`:
/// held; `charge.dispute.closed` won: released, lost: the escrow pays the
/// chargeback). None when the disputed PaymentIntent is no contract's.
pub(super) async fn contract_disputed(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    d: &DisputeFacts,
) -> Result<Option<WebhookOutcome>> {
    let Some(pi) = d.payment_intent.as_deref() else {
        return Ok(None);
    };
    let Some(k) = state.ledger.contract_by_payment_intent(pi).await? else {
        return Ok(None);
    };
    let what = match (ev.kind.as_str(), d.status.as_deref()) {
        ("charge.dispute.created", _) => DisputeMove::Opened,
        ("charge.dispute.closed", Some("won")) => DisputeMove::Won,
        ("charge.dispute.closed", Some("lost")) => DisputeMove::Lost,
        // Funds withdrawn and reinstated: the close decides.
        _ => {
            state.ledger.record_stripe_event(ev).await?;
            return Ok(Some(WebhookOutcome::Ignored));
        }
    };
    tracing::info!(contract = %k.contract, dispute = ?d.id, ?what, "dispute of a contract's charge");
    Ok(Some(WebhookOutcome::applied_if(
        state.ledger.contract_dispute(ev, &k.contract, what).await?,
    )))
}
