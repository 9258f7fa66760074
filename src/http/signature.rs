//! Verifies the payment provider's webhook signature: `X-Signature: sha256=<hex>` where hex is
//! HMAC-SHA256 of the raw request body under the shared secret. The comparison is constant
//! time (`Mac::verify_slice`), so timing reveals nothing about the expected value.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Signature header is missing")]
    Missing,
    #[error("the X-Signature header is not of the form sha256=<hex>")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NotConfigured,
}

pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::NotConfigured)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value a sender would compute (used by tests and the README's example).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", to_hex(&digest))
}

/// Lowercase hex, as Postgres's `encode(..., 'hex')` writes it.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    #[test]
    fn a_correct_signature_verifies() {
        let body = br#"{"event":"deposit.succeeded"}"#;
        assert_eq!(verify(SECRET, body, Some(&sign(SECRET, body))), Ok(()));
    }

    #[test]
    fn a_changed_body_or_another_secret_does_not() {
        let body = br#"{"amount":100}"#;
        let header = sign(SECRET, body);
        assert_eq!(
            verify(SECRET, br#"{"amount":999}"#, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        assert_eq!(verify(SECRET, b"x", None), Err(SignatureError::Missing));
        assert_eq!(
            verify(SECRET, b"x", Some("md5=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(SECRET, b"x", Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"", b"x", Some("sha256=00")),
            Err(SignatureError::NotConfigured)
        );
    }
}
