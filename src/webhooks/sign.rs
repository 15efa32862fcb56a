//! Webhook signatures: `Giftstream-Signature: t=<unix s>,v1=<hex>` where
//! the hex is HMAC-SHA256 keyed with the endpoint's whole secret string
//! (`whsec_...`, as UTF-8) over `t + "." + body` (like Stripe's).
//!
//! Owns: secrets, signing and the reference verification. Must not: send.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The signature header's name.
pub const HEADER: &str = "giftstream-signature";

/// A new signing secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The hex HMAC-SHA256 of `t.body`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// The header value `t=<t>,v1=<signature>`.
pub fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

/// Whether `header` signs `body` with `secret` at a time within
/// `tolerance_s` of `now_s` (any `v1` may match, in constant time).
pub fn verify(secret: &str, header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    sigs.iter()
        .any(|s| hex::decode(s).is_ok_and(|raw| mac(secret, t, body).verify_slice(&raw).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_t_dot_body() {
        // Reference value: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let h = header("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            h,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn verify_accepts_the_signature_and_refuses_changes() {
        let body = br#"{"id":"x"}"#;
        let h = header("whsec_abc", 1000, body);
        assert!(verify("whsec_abc", &h, body, 1010, 300));
        assert!(!verify("whsec_abd", &h, body, 1010, 300), "other secret");
        assert!(
            !verify("whsec_abc", &h, br#"{"id":"y"}"#, 1010, 300),
            "other body"
        );
        assert!(!verify("whsec_abc", &h, body, 2000, 300), "too old");
        assert!(!verify("whsec_abc", "t=1000", body, 1000, 300), "no v1");
        assert!(!verify("whsec_abc", "garbage", body, 1000, 300));
    }

    #[test]
    fn secrets_are_random_32_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64);
    }
}
