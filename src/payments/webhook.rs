//! Stripe webhook signatures and events.
//!
//! Owns: checking `Stripe-Signature: t=...,v1=...` with async-stripe-webhook
//! (HMAC-SHA256 of `t.body` with the endpoint secret, constant-time
//! compare, at most 300 s old — the crate's fixed tolerance — or
//! `stripe.webhook_tolerance_s` when that is smaller), and reading what
//! giftstream needs from the event: through async-stripe's generated types,
//! or, when they refuse a correctly signed event (the shape of another API
//! version, a field a fake leaves out), from the minimal envelope (`id`,
//! `type`, `data.object`) giftstream decodes itself.
//! Must not: apply an event (the payments module does, after verifying), or
//! refuse a correctly signed event for its shape alone (Stripe would
//! redeliver it for days, and it would never pass).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use stripe_webhook::{EventObject, Webhook, WebhookError};

/// async-stripe-webhook's tolerance, fixed in the crate: the upper bound of
/// `stripe.webhook_tolerance_s`.
pub const TOLERANCE_S_MAX: u64 = 300;

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The `t=` timestamp is not a number.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// No `v1` signature matches (or no `t=`, no `v1=`, no header).
    #[error("no matching v1 signature")]
    Mismatch,
    /// The signed timestamp is outside the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Expired,
}

/// Why a webhook was refused; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The signature does not hold.
    #[error("Stripe-Signature: {0}")]
    Signature(#[from] SignatureError),
    /// Correctly signed, but not even an event envelope (or not UTF-8).
    #[error("event: {0}")]
    Event(String),
}

/// How an event was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// async-stripe's generated types took it whole.
    Typed,
    /// They refused it; giftstream's minimal envelope read it.
    Envelope,
}

/// A verified event, as far as giftstream reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `evt_...`.
    pub id: String,
    /// E.g. `payment_intent.succeeded`.
    pub kind: String,
    /// When Stripe created it, seconds since epoch (0 when absent): orders
    /// `account.updated` events, which Stripe does not deliver in order.
    pub created: i64,
    /// What the event is about, for the types giftstream applies.
    pub object: Object,
    /// Which decoder read it.
    pub decoder: Decoder,
}

/// The object of an event giftstream applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `payment_intent.succeeded`.
    PaymentIntent(PaymentIntentFacts),
    /// `charge.refunded` and `charge.succeeded` (the Transfer of a tip's
    /// destination charge).
    Charge(ChargeFacts),
    /// `account.updated`.
    Account(AccountFacts),
    /// `charge.dispute.funds_withdrawn` and `charge.dispute.funds_reinstated`
    /// (a chargeback of a coin purchase, and a won dispute);
    /// `charge.dispute.created` and `charge.dispute.closed` (a marketplace
    /// contract's dispute).
    Dispute(DisputeFacts),
    /// Any other type: acknowledged and ignored.
    Other,
}

/// What giftstream reads from a succeeded PaymentIntent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentIntentFacts {
    /// `pi_...`.
    pub id: Option<String>,
    /// Amount, cents.
    pub amount: Option<i64>,
    /// Amount received, cents.
    pub amount_received: Option<i64>,
    /// Currency, lower case.
    pub currency: Option<String>,
    /// Metadata (string values only, as Stripe keeps them).
    pub metadata: HashMap<String, String>,
}

/// What giftstream reads from a refunded Charge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChargeFacts {
    /// The PaymentIntent it belongs to.
    pub payment_intent: Option<String>,
    /// Cents refunded so far (cumulative).
    pub amount_refunded: Option<i64>,
    /// `tr_...`: the Transfer of a destination charge (a tip).
    pub transfer: Option<String>,
}

/// What giftstream reads from a dispute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DisputeFacts {
    /// `dp_...`.
    pub id: Option<String>,
    /// Cents disputed.
    pub amount: Option<i64>,
    /// The disputed PaymentIntent.
    pub payment_intent: Option<String>,
    /// Its status (`won`, `lost` on `charge.dispute.closed`).
    pub status: Option<String>,
}

/// What giftstream reads from an updated Connect account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountFacts {
    /// `acct_...`.
    pub id: Option<String>,
    /// Whether Stripe pays out to it (absent: no).
    pub payouts_enabled: bool,
}

/// Verify `header` over `payload` with `secret` at `now_s` (seconds since
/// epoch), accepting timestamps at most `tolerance_s` away (and never more
/// than [`TOLERANCE_S_MAX`]), then read the event.
pub fn read_event(
    payload: &[u8],
    header: &str,
    secret: &str,
    tolerance_s: u64,
    now_s: i64,
) -> Result<Event, Refused> {
    let text =
        std::str::from_utf8(payload).map_err(|_| Refused::Event("body is not UTF-8".into()))?;
    let typed = match Webhook::construct_event_with_timestamp(text, header, secret, now_s) {
        Ok(ev) => Some(ev),
        // Only reached once the signature and its age were checked.
        Err(WebhookError::BadParse(why)) => {
            tracing::debug!(%why, "event refused by async-stripe's types: read as an envelope");
            None
        }
        Err(WebhookError::BadHeader(_)) => return Err(SignatureError::Malformed.into()),
        Err(WebhookError::BadTimestamp(_)) => return Err(SignatureError::Expired.into()),
        Err(WebhookError::BadSignature | WebhookError::BadKey) => {
            return Err(SignatureError::Mismatch.into())
        }
    };
    if tolerance_s < TOLERANCE_S_MAX {
        let t = signed_at(header).ok_or(SignatureError::Malformed)?;
        if now_s.abs_diff(t) > tolerance_s {
            return Err(SignatureError::Expired.into());
        }
    }
    match typed {
        Some(ev) => Ok(from_typed(ev)),
        None => {
            metrics::counter!("giftstream_stripe_webhooks_envelope_total").increment(1);
            from_envelope(text)
        }
    }
}

/// The `t=` of a header async-stripe already accepted.
fn signed_at(header: &str) -> Option<i64> {
    header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .rfind(|(k, _)| *k == "t")
        .and_then(|(_, v)| v.parse().ok())
}

fn from_typed(ev: stripe_webhook::Event) -> Event {
    let object = match ev.data.object {
        EventObject::PaymentIntentSucceeded(pi) => Object::PaymentIntent(PaymentIntentFacts {
            id: Some(pi.id.as_str().to_string()),
            amount: Some(pi.amount),
            amount_received: Some(pi.amount_received),
            currency: Some(pi.currency.to_string()),
            metadata: pi.metadata,
        }),
        EventObject::ChargeRefunded(ch) | EventObject::ChargeSucceeded(ch) => {
            Object::Charge(ChargeFacts {
                payment_intent: ch.payment_intent.map(|p| p.id().as_str().to_string()),
                amount_refunded: Some(ch.amount_refunded),
                transfer: ch.transfer.map(|t| t.id().as_str().to_string()),
            })
        }
        EventObject::ChargeDisputeFundsWithdrawn(d)
        | EventObject::ChargeDisputeFundsReinstated(d)
        | EventObject::ChargeDisputeCreated(d)
        | EventObject::ChargeDisputeClosed(d) => Object::Dispute(DisputeFacts {
            id: Some(d.id.as_str().to_string()),
            amount: Some(d.amount),
            payment_intent: d.payment_intent.map(|p| p.id().as_str().to_string()),
            status: Some(d.status.as_str().to_string()),
        }),
        EventObject::AccountUpdated(a) => Object::Account(AccountFacts {
            id: Some(a.id.as_str().to_string()),
            payouts_enabled: a.payouts_enabled.unwrap_or(false),
        }),
        _ => Object::Other,
    };
    Event {
        id: ev.id.as_str().to_string(),
        kind: ev.type_.as_str().to_string(),
        created: ev.created,
        object,
        decoder: Decoder::Typed,
    }
}

/// The minimal envelope giftstream reads when the generated types refuse.
#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: i64,
    data: EnvelopeData,
}

#[derive(Deserialize)]
struct EnvelopeData {
    object: Value,
}

fn from_envelope(text: &str) -> Result<Event, Refused> {
    let env: Envelope = serde_json::from_str(text).map_err(|e| Refused::Event(e.to_string()))?;
    let o = &env.data.object;
    let str_at = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let int_at = |k: &str| o.get(k).and_then(Value::as_i64);
    let object = match env.kind.as_str() {
        "payment_intent.succeeded" => Object::PaymentIntent(PaymentIntentFacts {
            id: str_at("id"),
            amount: int_at("amount"),
            amount_received: int_at("amount_received"),
            currency: str_at("currency"),
            metadata: o
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        "charge.refunded" | "charge.succeeded" => Object::Charge(ChargeFacts {
            // An id, or the expanded PaymentIntent.
            payment_intent: str_at("payment_intent").or_else(|| {
                o.get("payment_intent")
                    .and_then(|p| p.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
            amount_refunded: int_at("amount_refunded"),
            transfer: str_at("transfer").or_else(|| {
                o.get("transfer")
                    .and_then(|p| p.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
        }),
        "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated"
        | "charge.dispute.created"
        | "charge.dispute.closed" => Object::Dispute(DisputeFacts {
            id: str_at("id"),
            amount: int_at("amount"),
            status: str_at("status"),
            payment_intent: str_at("payment_intent").or_else(|| {
                o.get("payment_intent")
                    .and_then(|p| p.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
        }),
        "account.updated" => Object::Account(AccountFacts {
            id: str_at("id"),
            payouts_enabled: o
                .get("payouts_enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        _ => Object::Other,
    };
    Ok(Event {
        id: env.id,
        kind: env.kind,
        created: env.created,
        object,
        decoder: Decoder::Envelope,
    })
}

/// The header Stripe would send for `payload` signed with `secret` at `t`
/// (tests and tools sign their own events with it; async-stripe-webhook's
/// test header).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    Webhook::generate_test_header(&String::from_utf8_lossy(payload), secret, Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "whsec_x";

    fn event(kind: &str, object: Value) -> String {
        json!({
            "id": "evt_1", "object": "event", "api_version": "2026-09-30.endive",
            "created": 1000, "livemode": false, "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind, "data": { "object": object }
        })
        .to_string()
    }

    fn read(body: &str, tolerance_s: u64, now_s: i64) -> Result<Event, Refused> {
        read_event(
            body.as_bytes(),
            &sign(body.as_bytes(), SECRET, 1000),
            SECRET,
            tolerance_s,
            now_s,
        )
    }

    /// A PaymentIntent as Stripe's API reference shows it (succeeded).
    fn full_payment_intent() -> Value {
        json!({
            "id": "pi_1", "object": "payment_intent", "amount": 1999,
            "amount_capturable": 0, "amount_details": { "tip": {} }, "amount_received": 1999,
            "application": null, "application_fee_amount": null,
            "automatic_payment_methods": null, "canceled_at": null,
            "cancellation_reason": null, "capture_method": "automatic_async",
            "client_secret": "pi_1_secret_x", "confirmation_method": "automatic",
            "created": 1000, "currency": "usd", "customer": null, "description": null,
            "last_payment_error": null, "latest_charge": "ch_1", "livemode": false,
            "metadata": { "giftstream_kind": "purchase", "giftstream_user": "vera" },
            "next_action": null, "on_behalf_of": null, "payment_method": "pm_1",
            "payment_method_types": ["card"], "processing": null, "receipt_email": null,
            "review": null, "setup_future_usage": null, "shipping": null, "source": null,
            "statement_descriptor": null, "statement_descriptor_suffix": null,
            "status": "succeeded", "transfer_data": null, "transfer_group": null
        })
    }

    /// A Charge as Stripe's API reference shows it (partly refunded).
    fn full_charge() -> Value {
        json!({
            "id": "ch_1", "object": "charge", "amount": 1999, "amount_captured": 1999,
            "amount_refunded": 1000, "application": null, "application_fee": null,
            "application_fee_amount": null, "balance_transaction": "txn_1",
            "billing_details": { "address": null, "email": null, "name": null, "phone": null },
            "captured": true, "created": 1000, "currency": "usd", "customer": null,
            "description": null, "disputed": false, "failure_code": null,
            "failure_message": null, "livemode": false, "metadata": {}, "paid": true,
            "payment_intent": "pi_1", "payment_method": "pm_1", "receipt_email": null,
            "refunded": false, "status": "succeeded"
        })
    }

    #[test]
    fn signatures_are_checked_with_the_tolerance() {
        let body = event("customer.created", json!({ "id": "cus_1" }));
        let h = sign(body.as_bytes(), SECRET, 1000);
        let check = |b: &str, h: &str, secret: &str, tol: u64, now: i64| {
            read_event(b.as_bytes(), h, secret, tol, now).map(|e| e.id)
        };
        assert_eq!(check(&body, &h, SECRET, 300, 1200), Ok("evt_1".into()));
        assert_eq!(check(&body, &h, SECRET, 300, 700), Ok("evt_1".into()));
        assert_eq!(
            check(&body, &h, SECRET, 300, 1301),
            Err(SignatureError::Expired.into())
        );
        // A smaller configured tolerance is applied too.
        assert_eq!(
            check(&body, &h, SECRET, 60, 1061),
            Err(SignatureError::Expired.into())
        );
        assert_eq!(check(&body, &h, SECRET, 60, 1060), Ok("evt_1".into()));
        assert_eq!(
            check(&body, &h, "whsec_y", 300, 1000),
            Err(SignatureError::Mismatch.into())
        );
        assert_eq!(
            check("{}", &h, SECRET, 300, 1000),
            Err(SignatureError::Mismatch.into())
        );
        for bad in ["v1=00", "t=1000", "", "t=1000,v1=zz"] {
            assert_eq!(
                check(&body, bad, SECRET, 300, 1000),
                Err(SignatureError::Mismatch.into()),
                "{bad}"
            );
        }
        assert_eq!(
            check(&body, "t=abc,v1=00", SECRET, 300, 1000),
            Err(SignatureError::Malformed.into())
        );
        assert!(matches!(
            read_event(b"\xff{}", &h, SECRET, 300, 1000),
            Err(Refused::Event(_))
        ));
    }

    #[test]
    fn full_shapes_are_read_by_the_generated_types() {
        let e = read(
            &event("payment_intent.succeeded", full_payment_intent()),
            300,
            1000,
        )
        .unwrap();
        assert_eq!(e.decoder, Decoder::Typed);
        assert_eq!(
            (e.id.as_str(), e.kind.as_str()),
            ("evt_1", "payment_intent.succeeded")
        );
        let Object::PaymentIntent(pi) = e.object else {
            panic!("{e:?}")
        };
        assert_eq!(
            (
                pi.id.as_deref(),
                pi.amount,
                pi.amount_received,
                pi.currency.as_deref()
            ),
            (Some("pi_1"), Some(1999), Some(1999), Some("usd"))
        );
        assert_eq!(pi.metadata["giftstream_kind"], "purchase");
        assert_eq!(pi.metadata["giftstream_user"], "vera");

        let e = read(&event("charge.refunded", full_charge()), 300, 1000).unwrap();
        assert_eq!(e.decoder, Decoder::Typed);
        assert_eq!(
            e.object,
            Object::Charge(ChargeFacts {
                payment_intent: Some("pi_1".into()),
                amount_refunded: Some(1000),
                transfer: None
            })
        );

        let acct = json!({ "id": "acct_1", "object": "account", "type": "express",
                           "charges_enabled": true, "payouts_enabled": true,
                           "details_submitted": true, "metadata": {} });
        let e = read(&event("account.updated", acct), 300, 1000).unwrap();
        assert_eq!(e.decoder, Decoder::Typed);
        assert_eq!(
            e.object,
            Object::Account(AccountFacts {
                id: Some("acct_1".into()),
                payouts_enabled: true
            })
        );
    }

    #[test]
    fn shapes_the_types_refuse_are_read_from_the_envelope_alike() {
        // The same facts with the fields another API version (or a fake)
        // leaves out: refused by the generated types, read all the same.
        let mut pi = full_payment_intent();
        for k in [
            "amount_capturable",
            "confirmation_method",
            "payment_method_types",
        ] {
            pi.as_object_mut().unwrap().remove(k);
        }
        let typed = read(
            &event("payment_intent.succeeded", full_payment_intent()),
            300,
            1000,
        )
        .unwrap();
        let e = read(&event("payment_intent.succeeded", pi), 300, 1000).unwrap();
        assert_eq!(e.decoder, Decoder::Envelope);
        assert_eq!(e.object, typed.object);

        let mut ch = full_charge();
        ch.as_object_mut().unwrap().remove("billing_details");
        let e = read(&event("charge.refunded", ch), 300, 1000).unwrap();
        assert_eq!(e.decoder, Decoder::Envelope);
        assert_eq!(
            e.object,
            Object::Charge(ChargeFacts {
                payment_intent: Some("pi_1".into()),
                amount_refunded: Some(1000),
                transfer: None
            })
        );

        // An event without the envelope's own required fields (an older
        // API version had no `pending_webhooks`).
        let old = json!({ "id": "evt_2", "object": "event", "type": "account.updated",
                          "data": { "object": { "id": "acct_2", "payouts_enabled": true } } })
        .to_string();
        let e = read(&old, 300, 1000).unwrap();
        assert_eq!((e.id.as_str(), e.decoder), ("evt_2", Decoder::Envelope));
        assert_eq!(
            e.object,
            Object::Account(AccountFacts {
                id: Some("acct_2".into()),
                payouts_enabled: true
            })
        );

        // Other types, known to Stripe or not, are read and left alone.
        for kind in ["customer.created", "giftstream.unheard_of"] {
            let e = read(&event(kind, json!({ "id": "x_1" })), 300, 1000).unwrap();
            assert_eq!((e.kind.as_str(), &e.object), (kind, &Object::Other));
        }
        // Correctly signed but not an event: refused, nothing applied.
        assert!(matches!(read("[1, 2]", 300, 1000), Err(Refused::Event(_))));
    }
}
