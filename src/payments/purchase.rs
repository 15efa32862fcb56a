//! Coin purchases: the PaymentIntent for a package, and the credit when
//! Stripe says it was paid.
//!
//! Owns: [`create_purchase`], the ledger-then-wallet credit of a paid
//! purchase and the coin share of a partial amount.
//! Must not: credit coins on anything but a verified `payment_intent.succeeded`;
//! take coins or price from the event rather than the recorded purchase.

use serde::Serialize;

use crate::auth::Identity;
use crate::error::{Error, Result};
use crate::ledger::{Fiat, OpKey, PurchaseOp, StripeEventRef};
use crate::protocol::valid_client_id;

use super::stripe::{currency, CreatePaymentIntent, PaymentIntentAllowedPaymentMethodTypes};
use super::{
    client, metadata, outcome::credit_rest, outcome::WebhookOutcome, refund_dispute::apply_parked,
    stripe_failed, webhook::PaymentIntentFacts, PaymentError, Payments, META_KIND,
};

/// Answer to a coin purchase: the client confirms it with Stripe.js.
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseAnswer {
    /// The client's request id.
    pub id: String,
    /// Package bought.
    pub package: String,
    /// Coins it credits once paid.
    pub coins: i64,
    /// Price, cents.
    pub amount_cents: i64,
    /// Currency.
    pub currency: String,
    /// `pi_...`.
    pub payment_intent: String,
    /// For Stripe.js.
    pub client_secret: String,
}

/// `POST /v1/coins/purchases`: a PaymentIntent for a package, keyed by the
/// request id. Coins are credited by the webhook, not here.
pub async fn create_purchase(
    state: &Payments<'_>,
    who: &Identity,
    package: &str,
    id: &str,
) -> Result<PurchaseAnswer> {
    let c = client(state)?;
    if !valid_client_id(id) {
        return Err(Error::bad_request("id must be 1..=64 characters"));
    }
    let pkg = state
        .cfg
        .stripe
        .packages
        .iter()
        .find(|p| p.id == package)
        .ok_or_else(|| PaymentError::UnknownPackage(package.to_string()))?;
    // Checked at start (`stripe.packages[i].currency`); never a panic.
    let fiat = Fiat::parse(&pkg.currency)
        .ok_or_else(|| Error::internal(format!("package `{}`: unknown currency", pkg.id)))?;
    let req = CreatePaymentIntent::new(pkg.price_cents, currency(fiat.lower()))
        .allowed_payment_method_types(vec![PaymentIntentAllowedPaymentMethodTypes::Card])
        .metadata(metadata([
            (META_KIND, "purchase".to_string()),
            ("giftstream_user", who.user.clone()),
            ("giftstream_package", pkg.id.clone()),
            ("giftstream_coins", pkg.coins.to_string()),
        ]));
    // A user name holds no `:` (auth checks `valid_name`), so the client id
    // is the whole rest of the key: one key per (user, id).
    let key = format!("purchase:{}:{id}", who.user);
    let pi = c
        .create_payment_intent(&req, &key)
        .await
        .map_err(stripe_failed)?;
    // Recorded before the client can pay: only purchases created here are
    // ever credited.
    state
        .ledger
        .purchase_created(&PurchaseOp {
            event: StripeEventRef {
                id: String::new(),
                kind: String::new(),
            },
            payment_intent: pi.id.as_str().to_string(),
            user: who.user.clone(),
            coins: pkg.coins,
            amount_cents: pi.amount,
            currency: fiat,
        })
        .await?;
    Ok(PurchaseAnswer {
        id: id.to_string(),
        package: pkg.id.clone(),
        coins: pkg.coins,
        amount_cents: pi.amount,
        currency: pi.currency.to_string(),
        payment_intent: pi.id.as_str().to_string(),
        client_secret: pi.client_secret.unwrap_or_default(),
    })
}

/// A purchase was paid: ledger first (op `purchase:{pi}`, once), then the
/// wallet (idempotent on the same op id, so a redelivery after a crash
/// between the two completes the credit). Coins and price come from the
/// purchase recorded at creation, never from the event alone.
pub(super) async fn purchase_paid(
    state: &Payments<'_>,
    ev: &StripeEventRef,
    pi: &PaymentIntentFacts,
) -> Result<WebhookOutcome> {
    let id = pi
        .id
        .as_deref()
        .ok_or_else(|| Error::bad_request("payment_intent.id"))?;
    let Some(rec) = state.ledger.purchase_record(id).await? else {
        tracing::info!(
            payment_intent = id,
            "payment for a purchase not created here: ignored"
        );
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Ignored);
    };
    let amount = pi.amount_received.filter(|a| *a > 0).or(pi.amount);
    // Paid in the package's own currency, as recorded at creation.
    if amount != Some(rec.amount_cents) || pi.currency.as_deref() != Some(rec.currency.lower()) {
        tracing::warn!(
            payment_intent = id,
            "paid amount differs from the purchase: not credited"
        );
        state.ledger.record_stripe_event(ev).await?;
        return Ok(WebhookOutcome::Ignored);
    }
    let op = PurchaseOp {
        event: ev.clone(),
        payment_intent: id.to_string(),
        user: rec.user.clone(),
        coins: rec.coins,
        amount_cents: rec.amount_cents,
        currency: rec.currency,
    };
    let applied = state.ledger.purchase(&op).await?;
    if applied || rec.paid {
        // The ledger decided, once, how much went to an earlier debt; the
        // wallet gets the rest (the same amount on a redelivery).
        let to_debt = if applied {
            state
                .ledger
                .purchase_record(id)
                .await?
                .map_or(0, |r| r.coins_to_debt)
        } else {
            rec.coins_to_debt
        };
        let coins = rec.coins - to_debt;
        if to_debt > 0 {
            tracing::info!(user = %rec.user, repaid = to_debt, "purchase repaid a debt first");
        }
        credit_rest(state, &rec.user, coins, &OpKey::Purchase(id).op_id()).await?;
        apply_parked(state, id).await?;
    }
    Ok(WebhookOutcome::applied_if(applied))
}
