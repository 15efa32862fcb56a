//! The signed webhook's entry: verify, record once, dispatch each event
//! type to its flow.
//!
//! Owns: [`webhook`]. The outcome type is `super::outcome`'s.
//! Must not: apply money effects itself (the flow modules do), or act on
//! an unverified body.

use crate::error::{Error, Result};
use crate::ledger::StripeEventRef;
use crate::protocol::now_ms;

use super::webhook::{self, AccountFacts, Object};

use super::outcome::WebhookOutcome;
use super::{
    contract::contract_disputed, contract::contract_paid, purchase::purchase_paid,
    refund_dispute::dispute_reinstated, refund_dispute::dispute_withdrawn,
    refund_dispute::refunded, tip::charge_succeeded, tip::tip_paid, Payments, META_KIND,
};

/// `POST /v1/stripe/webhook`: verify the signature, then apply the event
/// once. A bad or old signature is `bad_request` and changes nothing.
pub async fn webhook(state: &Payments<'_>, signature: &str, body: &[u8]) -> Result<WebhookOutcome> {
    let cfg = &state.cfg.stripe;
    if !cfg.enabled() {
        return Err(Error::bad_request(
            "payments are not configured on this server (stripe.secret_key)",
        ));
    }
    let event = webhook::read_event(
        body,
        signature,
        &cfg.webhook_secret,
        cfg.webhook_tolerance_s,
        now_ms() / 1000,
    )
    .map_err(|e| {
        if let webhook::Refused::Signature(_) = e {
            metrics::counter!("giftstream_stripe_webhooks_refused_total").increment(1);
        }
        Error::bad_request(e.to_string())
    })?;
    let ev = StripeEventRef {
        id: event.id.clone(),
        kind: event.kind.clone(),
    };
    let outcome = match &event.object {
        Object::PaymentIntent(pi) => match pi.metadata.get(META_KIND).map(String::as_str) {
            Some("purchase") => purchase_paid(state, &ev, pi).await?,
            Some("tip") => tip_paid(state, &ev, pi).await?,
            Some("contract") => contract_paid(state, &ev, pi).await?,
            _ => WebhookOutcome::Ignored,
        },
        Object::Charge(ch) if event.kind == "charge.refunded" => refunded(state, &ev, ch).await?,
        Object::Charge(ch) => charge_succeeded(state, &ev, ch).await?,
        Object::Dispute(d) if let Some(o) = contract_disputed(state, &ev, d).await? => o,
        Object::Dispute(d) => match event.kind.as_str() {
            "charge.dispute.funds_withdrawn" => dispute_withdrawn(state, &ev, d).await?,
            "charge.dispute.funds_reinstated" => dispute_reinstated(state, &ev, d).await?,
            _ => {
                state.ledger.record_stripe_event(&ev).await?;
                WebhookOutcome::Ignored
            }
        },
        Object::Account(AccountFacts {
            id,
            payouts_enabled,
        }) => {
            let acct = id
                .as_deref()
                .ok_or_else(|| Error::bad_request("account.id"))?;
            // False also for an event older than the last one applied
            // for the account: acknowledged, no effect.
            WebhookOutcome::applied_if(
                state
                    .ledger
                    .account_updated(&ev, acct, *payouts_enabled, event.created)
                    .await?,
            )
        }
        Object::Other => WebhookOutcome::Ignored,
    };
    metrics::counter!("giftstream_stripe_webhooks_total", "outcome" => match outcome {
        WebhookOutcome::Applied => "applied",
        WebhookOutcome::Replayed => "replayed",
        WebhookOutcome::Ignored => "ignored",
    })
    .increment(1);
    Ok(outcome)
}
