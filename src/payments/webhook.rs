//! Stripe webhook signatures and the event envelope.
//!
//! Owns: verifying `Stripe-Signature: t=...,v1=...` (HMAC-SHA256 of
//! `t.body` with the endpoint secret, constant-time compare, timestamp
//! tolerance) and decoding the event envelope.
//! Must not: apply an event (the payments module does, after verifying).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `t=` or no `v1=` in the header, or a bad number.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// No `v1` signature matches.
    #[error("no matching v1 signature")]
    Mismatch,
    /// The signed timestamp is outside the tolerance.
    #[error("signature timestamp outside the tolerance")]
    Expired,
}

/// Verify `header` over `payload` with `secret` at `now_s` (seconds since
/// epoch), accepting timestamps at most `tolerance_s` away.
pub fn verify(
    payload: &[u8],
    header: &str,
    secret: &str,
    tolerance_s: u64,
    now_s: i64,
) -> Result<(), SignatureError> {
    let mut t: Option<i64> = None;
    let mut sigs: Vec<&str> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => t = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => sigs.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let ok = sigs
        .iter()
        .any(|s| hex_decode(s).is_some_and(|bytes| mac.clone().verify_slice(&bytes).is_ok()));
    if !ok {
        return Err(SignatureError::Mismatch);
    }
    if now_s.abs_diff(t) > tolerance_s {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// The header Stripe would send for `payload` signed at `t` (tests and
/// tools sign their own events with it).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A Stripe event envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_...`.
    pub id: String,
    /// E.g. `payment_intent.succeeded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object the event is about.
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The object (a PaymentIntent, a Charge, an Account, ...).
    pub object: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_with_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(body, "whsec_x", 1000);
        assert_eq!(verify(body, &h, "whsec_x", 300, 1200), Ok(()));
        assert_eq!(
            verify(body, &h, "whsec_x", 300, 1301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(body, &h, "whsec_y", 300, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"{}", &h, "whsec_x", 300, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(body, "v1=00", "whsec_x", 300, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(body, "t=1000", "whsec_x", 300, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(body, "t=1000,v1=zz", "whsec_x", 300, 1000),
            Err(SignatureError::Mismatch)
        );
    }
}
