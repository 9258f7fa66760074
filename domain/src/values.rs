//! Validated values shared by commands. Each `parse` says, in words a person can act on,
//! why an input is refused; the HTTP edge turns that into a 422 naming the field.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused: the field it came from and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// What a sealed text starts with (ADR 7): a control character, which [`bounded_text`]
/// refuses, so a sealed text and a client's text are never taken for one another.
pub const SEALED_MARKER: char = '\u{1}';

/// Text that is trimmed, non-empty (unless optional) and bounded in characters. The bound
/// holds for what was sent, white space included, as the API document states it.
fn bounded_text(
    field: &'static str,
    raw: &str,
    max_chars: usize,
    allow_empty: bool,
) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() && !allow_empty {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    if raw.chars().count() > max_chars {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(InvalidValue::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $allow_empty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                bounded_text($field, raw, $max, $allow_empty).map(Self)
            }

            /// A text the edge validated with `parse` and then sealed under its author's
            /// key (ADR 7): carried as it is, opaque here, its bound already checked.
            pub fn sealed(sealed: String) -> Self {
                debug_assert!(sealed.starts_with(SEALED_MARKER), "not a sealed text");
                Self(sealed)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_value!(
    /// A task's or bounty's title.
    Title, "title", 200, false
);
text_value!(
    /// Free-form description; may be empty.
    Description, "description", 10_000, true
);
text_value!(
    /// A short note or error text attached to a task transition.
    Note, "note", 2_000, true
);
text_value!(
    /// Why something was done (an admin's credit, a rejected submission, a dispute): required.
    Reason, "reason", 500, false
);
text_value!(
    /// A hunter's pitch when applying for a bounty.
    Pitch, "pitch", 2_000, false
);
text_value!(
    /// The text part of a bounty's deliverable.
    DeliverableText, "text", 10_000, false
);
text_value!(
    /// A payment provider's reference for a deposit or a withdrawal's settlement.
    ProviderReference, "reference", 200, false
);

/// A queue's name: 1–64 characters of lowercase letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueName(String);

impl QueueName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(ok_char) {
            return Err(InvalidValue::new(
                "queue",
                "must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A task's priority, 0 (lowest) to 9 (highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(u8);

impl Priority {
    pub const DEFAULT: Priority = Priority(0);

    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        u8::try_from(raw)
            .ok()
            .filter(|p| *p <= 9)
            .map(Self)
            .ok_or_else(|| InvalidValue::new("priority", "must be an integer from 0 to 9"))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A JSON document attached to a task (payload or result), bounded in serialized size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonDoc(serde_json::Value);

impl JsonDoc {
    pub const MAX_BYTES: usize = 64 * 1024;

    pub fn parse(field: &'static str, value: serde_json::Value) -> Result<Self, InvalidValue> {
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > Self::MAX_BYTES {
            return Err(InvalidValue::new(
                field,
                format!("must serialize to at most {} bytes", Self::MAX_BYTES),
            ));
        }
        if holds_nul(&value) {
            return Err(InvalidValue::new(
                field,
                "must not contain the character U+0000 in any string or key (the store cannot hold it)",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }
}

/// Whether any string or object key in `value` holds U+0000.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// A whole number within an inclusive range, named after the field it came from.
pub fn bounded_int(field: &'static str, raw: i64, min: i64, max: i64) -> Result<u32, InvalidValue> {
    if raw < min || raw > max {
        return Err(InvalidValue::new(
            field,
            format!("must be an integer from {min} to {max}"),
        ));
    }
    u32::try_from(raw).map_err(|_| InvalidValue::new(field, "out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_document_holds_no_nul_anywhere() {
        let ok = serde_json::json!({"a": ["b", {"c": 1, "d": null}]});
        assert!(JsonDoc::parse("payload", ok).is_ok());
        for bad in [
            serde_json::json!(["x", {"y": "a\0b"}]),
            serde_json::json!({"k\0": 1}),
            serde_json::json!("\0"),
        ] {
            let err = JsonDoc::parse("payload", bad).unwrap_err();
            assert!(err.to_string().contains("U+0000"), "{err}");
        }
    }

    #[test]
    fn queue_names_are_lowercase_and_bounded() {
        assert!(QueueName::parse("emails.high-1_x").is_ok());
        assert!(QueueName::parse("").is_err());
        assert!(QueueName::parse("Emails").is_err());
        assert!(QueueName::parse("a b").is_err());
        assert!(QueueName::parse(&"q".repeat(65)).is_err());
    }

    #[test]
    fn titles_are_trimmed_and_never_empty() {
        assert_eq!(Title::parse("  hi ").unwrap().as_str(), "hi");
        assert_eq!(Title::parse("   ").unwrap_err().field, "title");
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Title::parse("bell\u{7}").is_err());
    }

    /// Found by schemathesis: 198 characters between white space, 201 in all, were taken.
    #[test]
    fn the_bound_counts_what_was_sent_white_space_included() {
        assert!(Title::parse(&format!(" {} ", "x".repeat(198))).is_ok());
        assert!(Title::parse(&format!("\u{2007}\n {}", "x".repeat(198))).is_err());
    }

    #[test]
    fn a_sealed_text_is_carried_as_it_is_and_no_client_text_looks_sealed() {
        let sealed = format!("{SEALED_MARKER}bl1:author:{}", "x".repeat(900));
        assert_eq!(Title::sealed(sealed.clone()).as_str(), sealed);
        assert!(Title::parse(&sealed).is_err());
    }

    #[test]
    fn priority_is_zero_to_nine() {
        assert_eq!(Priority::parse(9).unwrap().get(), 9);
        assert!(Priority::parse(10).is_err());
        assert!(Priority::parse(-1).is_err());
    }

    #[test]
    fn json_documents_are_bounded() {
        let big = serde_json::Value::String("x".repeat(JsonDoc::MAX_BYTES));
        assert!(JsonDoc::parse("payload", big).is_err());
        assert!(JsonDoc::parse("payload", serde_json::json!({"a": 1})).is_ok());
    }
}
