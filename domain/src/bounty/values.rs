//! Validated values that only bounties use: tags and deliverables.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::values::{DeliverableText, InvalidValue, SEALED_MARKER};

/// A bounty's tag: 1–32 characters of lowercase letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if raw.is_empty() || raw.len() > Self::MAX_CHARS || !raw.chars().all(ok_char) {
            return Err(InvalidValue::new(
                "tags",
                format!("each tag must be 1-32 characters of a-z, 0-9 or '-', not {raw:?}"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bounty's tags: at most ten given, each kept once, in the order first given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX: usize = 10;

    /// Allows at most [`Tags::MAX`] tags, repeats included (the limit is on what a client
    /// sends, as the API document states it), parses each and drops repeats.
    pub fn parse<S: AsRef<str>>(raw: impl IntoIterator<Item = S>) -> Result<Self, InvalidValue> {
        let raw: Vec<S> = raw.into_iter().collect();
        if raw.len() > Self::MAX {
            return Err(InvalidValue::new(
                "tags",
                format!("at most {} tags", Self::MAX),
            ));
        }
        let mut tags: Vec<Tag> = Vec::new();
        for raw in raw {
            let tag = Tag::parse(raw.as_ref())?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        Ok(Self(tags))
    }

    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|t| t.as_str().to_owned()).collect()
    }
}

/// A web link to submitted work: `http://` or `https://`, at most 2000 characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Link(String);

impl Link {
    pub const MAX_CHARS: usize = 2_000;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let link = raw.trim();
        let rest = link
            .strip_prefix("https://")
            .or_else(|| link.strip_prefix("http://"));
        let Some(rest) = rest else {
            return Err(InvalidValue::new(
                "link",
                "must start with http:// or https://",
            ));
        };
        if rest.is_empty() || link.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidValue::new(
                "link",
                "must be a web address without spaces",
            ));
        }
        if link.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "link",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(link.to_owned()))
    }

    /// A link the edge validated with `parse` and then sealed (ADR 7): carried as it is.
    pub fn sealed(sealed: String) -> Self {
        debug_assert!(sealed.starts_with(SEALED_MARKER), "not a sealed link");
        Self(sealed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a hunter hands in: a text, a link, or both; never neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliverable {
    text: Option<DeliverableText>,
    link: Option<Link>,
}

impl Deliverable {
    /// Blank or absent parts count as missing; at least one part is required.
    pub fn parse(text: Option<&str>, link: Option<&str>) -> Result<Self, InvalidValue> {
        let text = present(text).map(DeliverableText::parse).transpose()?;
        let link = present(link).map(Link::parse).transpose()?;
        if text.is_none() && link.is_none() {
            return Err(InvalidValue::new(
                "deliverable",
                "needs a text, a link, or both",
            ));
        }
        Ok(Self { text, link })
    }

    /// A deliverable whose parts the edge validated with [`Deliverable::parse`] and then
    /// sealed (ADR 7); still never neither.
    pub fn sealed(text: Option<String>, link: Option<String>) -> Result<Self, InvalidValue> {
        if text.is_none() && link.is_none() {
            return Err(InvalidValue::new(
                "deliverable",
                "needs a text, a link, or both",
            ));
        }
        Ok(Self {
            text: text.map(DeliverableText::sealed),
            link: link.map(Link::sealed),
        })
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_ref().map(DeliverableText::as_str)
    }

    pub fn link(&self) -> Option<&str> {
        self.link.as_ref().map(Link::as_str)
    }
}

fn present(raw: Option<&str>) -> Option<&str> {
    raw.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lowercase_words_and_bounded() {
        assert_eq!(Tag::parse("rust-2024").unwrap().as_str(), "rust-2024");
        for bad in ["", "Rust", "a b", "a_b", "ü", &"x".repeat(33)] {
            assert_eq!(Tag::parse(bad).unwrap_err().field, "tags", "{bad:?}");
        }
        assert!(Tag::parse(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn at_most_ten_tags_are_given_and_repeats_are_dropped() {
        let tags = Tags::parse(["rust", "web", "rust"]).unwrap();
        assert_eq!(tags.to_strings(), vec!["rust", "web"]);
        let ten: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        assert_eq!(Tags::parse(&ten).unwrap().as_slice().len(), 10);
        // The document's `maxItems` counts what was sent, repeats included.
        let eleven_repeats = vec!["rust"; 11];
        assert_eq!(Tags::parse(&eleven_repeats).unwrap_err().field, "tags");
        let mut eleven = ten;
        eleven.push("t10".into());
        assert_eq!(Tags::parse(&eleven).unwrap_err().field, "tags");
        assert!(Tags::parse(Vec::<&str>::new())
            .unwrap()
            .as_slice()
            .is_empty());
    }

    #[test]
    fn links_are_web_addresses() {
        assert_eq!(
            Link::parse(" https://example.com/pr/1 ").unwrap().as_str(),
            "https://example.com/pr/1"
        );
        assert!(Link::parse("http://x").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "example.com",
            "https://a b",
            "javascript:x",
        ] {
            assert_eq!(Link::parse(bad).unwrap_err().field, "link", "{bad}");
        }
        let long = format!("https://{}", "x".repeat(1_993));
        assert!(Link::parse(&long).is_err());
        assert!(Link::parse(&long[..2_000]).is_ok());
    }

    #[test]
    fn a_deliverable_needs_a_text_or_a_link() {
        let both = Deliverable::parse(Some("done"), Some("https://x.io")).unwrap();
        assert_eq!(
            (both.text(), both.link()),
            (Some("done"), Some("https://x.io"))
        );
        assert_eq!(
            Deliverable::parse(None, Some("https://x.io"))
                .unwrap()
                .text(),
            None
        );
        assert_eq!(
            Deliverable::parse(Some("  "), None).unwrap_err().field,
            "deliverable"
        );
        assert_eq!(
            Deliverable::parse(Some("ok"), Some("nope"))
                .unwrap_err()
                .field,
            "link"
        );
        assert_eq!(
            Deliverable::parse(Some(&"x".repeat(10_001)), None)
                .unwrap_err()
                .field,
            "text"
        );
    }
}
