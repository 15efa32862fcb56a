//! Stripe's side of the chaos load: signed event envelopes, as Stripe
//! sends them to a webhook endpoint.
//!
//! Owns: [`sign`] (the `Stripe-Signature` header), [`event`],
//! [`purchase_pi`] and [`tip_pi`] (a purchase's or a tip's succeeded
//! PaymentIntent with the fields Stripe always sends).
//! Must not: deliver anything (see [`super::load`]).

use serde_json::{json, Value};

/// Seconds since the epoch.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Stripe's signature header of `body` at `t`.
pub fn sign(body: &str, secret: &str, t: i64) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Stripe event envelope.
pub fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2026-09-30.endive",
        "created": now_s(), "livemode": false, "pending_webhooks": 1,
        "type": kind, "data": { "object": object }
    })
}

/// A succeeded PaymentIntent of `cents` USD with `metadata`.
fn succeeded_pi(pi: &str, cents: i64, metadata: Value) -> Value {
    json!({
        "id": pi, "object": "payment_intent", "amount": cents, "amount_capturable": 0,
        "amount_received": cents, "capture_method": "automatic_async",
        "client_secret": format!("{pi}_secret_chaos"), "confirmation_method": "automatic",
        "created": now_s(), "currency": "usd", "latest_charge": null,
        "livemode": false, "payment_method_types": ["card"], "status": "succeeded",
        "metadata": metadata
    })
}

/// A purchase's succeeded PaymentIntent.
pub fn purchase_pi(pi: &str, user: &str, coins: i64, cents: i64) -> Value {
    succeeded_pi(
        pi,
        cents,
        json!({ "giftstream_kind": "purchase", "giftstream_user": user,
                "giftstream_coins": coins.to_string(), "giftstream_package": "coins_70" }),
    )
}

/// A tip's succeeded PaymentIntent (`tip_key` = `user:id`, `target` =
/// `room:ID` or `video:ID`), as the node made it.
pub fn tip_pi(pi: &str, tip_key: &str, target: &str, cents: i64) -> Value {
    succeeded_pi(
        pi,
        cents,
        json!({ "giftstream_kind": "tip", "giftstream_tip": tip_key,
                "giftstream_target": target }),
    )
}
