//! The sealed form of a person's text (ADR 7):
//! `"\u{1}bl1:<author uuid>:<base64url(nonce ‖ ciphertext ‖ tag)>"`, XChaCha20-Poly1305 under the
//! author's data key with the aggregate's id and the field's name as associated data, so a
//! sealed text opens only where it was sealed: not in another field, not in another aggregate.
//!
//! The leading U+0001 never starts a text a client sends (the validated values refuse control
//! characters), so a sealed string is never taken for a plain one, nor a plain one for sealed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use uuid::Uuid;

/// What every sealed string starts with: the marker and the form's version.
pub const PREFIX: &str = "\u{1}bl1:";

/// What an answer shows for a text whose author's key is destroyed, or that does not open.
pub const ERASED: &str = "[erased]";

/// The names of the fields people's texts are sealed for: the events' own (docs/PRIVACY.md).
pub mod field {
    pub const TITLE: &str = "title";
    pub const DESCRIPTION: &str = "description";
    pub const PITCH: &str = "pitch";
    pub const TEXT: &str = "text";
    pub const LINK: &str = "link";
    pub const REASON: &str = "reason";
    pub const NOTE: &str = "note";
    pub const ERROR: &str = "error";
}

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// Whether `text` is in the sealed form (opened or not).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// The author a sealed string names; `None` when it is not of the form.
pub fn author_of(sealed: &str) -> Option<Uuid> {
    parts(sealed).map(|(author, _)| author)
}

fn parts(sealed: &str) -> Option<(Uuid, &str)> {
    let (author, body) = sealed.strip_prefix(PREFIX)?.split_once(':')?;
    Some((Uuid::parse_str(author).ok()?, body))
}

/// The associated data: where the text belongs. The form's version leads, so a later form
/// can never open this one's texts by accident.
fn place(aggregate_id: &str, field: &str) -> Vec<u8> {
    format!("bl1\0{aggregate_id}\0{field}").into_bytes()
}

/// `text` sealed under `key`, the data key of `author`, for `field` of `aggregate_id`.
pub fn seal(
    key: &XChaCha20Poly1305,
    author: Uuid,
    aggregate_id: &str,
    field: &str,
    text: &str,
) -> Result<String, chacha20poly1305::Error> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let aad = place(aggregate_id, field);
    let sealed = key.encrypt(
        &XNonce::from(nonce),
        Payload {
            msg: text.as_bytes(),
            aad: &aad,
        },
    )?;
    let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    Ok(format!(
        "{PREFIX}{author}:{}",
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The text `sealed` holds, if it was sealed under `key` for `field` of `aggregate_id`;
/// `None` for anything else (another key, another place, altered bytes, not the form).
pub fn open(
    key: &XChaCha20Poly1305,
    sealed: &str,
    aggregate_id: &str,
    field: &str,
) -> Option<String> {
    let (_, body) = parts(sealed)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    if bytes.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
    let aad = place(aggregate_id, field);
    let text = key
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .ok()?;
    String::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::KeyInit;

    fn key(byte: u8) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&[byte; 32].into())
    }

    const BOUNTY: &str = "0192f3a4-5b6c-7d8e-9f01-23456789abcd";
    const OTHER: &str = "0192f3a4-5b6c-7d8e-9f01-23456789abce";

    #[test]
    fn a_sealed_text_opens_where_it_was_sealed_and_nowhere_else() {
        let author = Uuid::from_u128(7);
        let sealed = seal(&key(1), author, BOUNTY, "title", "Fix the flaky test").unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(author_of(&sealed), Some(author));
        assert!(!sealed.contains("flaky"));
        assert_eq!(
            open(&key(1), &sealed, BOUNTY, "title").as_deref(),
            Some("Fix the flaky test")
        );
        assert_eq!(open(&key(1), &sealed, BOUNTY, "description"), None);
        assert_eq!(open(&key(1), &sealed, OTHER, "title"), None);
        assert_eq!(open(&key(2), &sealed, BOUNTY, "title"), None);
    }

    #[test]
    fn an_altered_or_malformed_seal_does_not_open() {
        let sealed = seal(&key(1), Uuid::from_u128(7), BOUNTY, "pitch", "hire me").unwrap();
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(open(&key(1), &altered, BOUNTY, "pitch"), None);
        for bad in [
            "\u{1}bl1:",
            "\u{1}bl1:nobody:AAAA",
            "\u{1}bl1:00000000-0000-0000-0000-000000000007:!!",
            "\u{1}bl1:00000000-0000-0000-0000-000000000007:AAAA",
            "plain",
        ] {
            assert_eq!(open(&key(1), bad, BOUNTY, "pitch"), None, "{bad:?}");
        }
    }

    #[test]
    fn two_seals_of_one_text_differ() {
        let a = seal(&key(1), Uuid::from_u128(7), BOUNTY, "title", "same").unwrap();
        let b = seal(&key(1), Uuid::from_u128(7), BOUNTY, "title", "same").unwrap();
        assert_ne!(a, b);
    }
}
