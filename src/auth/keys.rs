//! The platform's public keys (`auth.public_keys_path`): PEM or JWKS
//! loading and the algorithm each key verifies.
//!
//! Owns: [`PublicKey`] and the key-file parser.
//! Must not: sign anything (giftstream holds no private key) or print key
//! material.

use jsonwebtoken::{Algorithm, DecodingKey};

/// A platform public key (`auth.public_keys_path`): verifies, never signs.
pub(super) struct PublicKey {
    pub(super) kid: Option<String>,
    pub(super) alg: Algorithm,
    pub(super) key: DecodingKey,
}

/// Read a PEM file (one or more `PUBLIC KEY` blocks: RSA, EC P-256 or
/// Ed25519) or a JWKS (`{"keys": [...]}`; `kid` and `alg` kept).
pub(super) fn load_public_keys(path: &str) -> std::result::Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let keys = if text.trim_start().starts_with('{') {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&text).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let alg = jwk_algorithm(jwk).ok_or_else(|| {
                format!("keys[{i}]: not an RS256, ES256 or EdDSA verification key")
            })?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
            keys.push(PublicKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        keys
    } else {
        let mut keys = Vec::new();
        for block in text.split("-----BEGIN ").skip(1) {
            let pem = format!("-----BEGIN {block}");
            let pem = pem.as_bytes();
            let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                (Algorithm::RS256, k)
            } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                (Algorithm::ES256, k)
            } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
                (Algorithm::EdDSA, k)
            } else {
                return Err(format!(
                    "key {} is not an RSA, EC P-256 or Ed25519 public key",
                    keys.len() + 1
                ));
            };
            keys.push(PublicKey {
                kid: None,
                alg,
                key,
            });
        }
        keys
    };
    if keys.is_empty() {
        return Err(format!("no public key in {path}"));
    }
    Ok(keys)
}

fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Some(by_type),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Some(by_type),
        Some(KeyAlgorithm::EdDSA) if by_type == Algorithm::EdDSA => Some(by_type),
        Some(_) => None,
    }
}
