//! The answer edge's one opener (ADR 7): every JSON string of an answer that is in the sealed
//! form is replaced by its text, or by `"[erased]"` when its author's key is destroyed or it
//! does not open where it stands; a plain text written before sealing is replaced by
//! `"[erased]"` when its author was erased (`super::legacy`). The authors' keys an answer needs
//! are read at once.
//!
//! A seal's associated data is its aggregate's id and its field's name, so the opener must
//! know both where the string stands: the field from the key that holds the string (a read
//! model's column names map back to the event's field, `deliverable_text` to `text`), the
//! aggregate from the nearest enclosing object that names it under one of the [`Scope`]'s
//! keys.

use async_trait::async_trait;
use bountyline_projections::opener::Text;
use bountyline_projections::{ProjectionError, StoredEvent};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

use super::keyring::{Keyring, Keys, PrivacyError};
use super::legacy::{Digester, ErasedTexts};
use super::seal::{self, field, ERASED};

/// How an answer names the aggregate each of its texts belongs to: the first of the scope's
/// keys that the nearest enclosing object holding any of them holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Events and aggregate states: the envelope's `aggregate_id`.
    Events,
    /// Bounties and their applications: an application's `bounty_id`, a bounty's `id`.
    Bounties,
    /// Tasks, and a claim's answer: `id`.
    Tasks,
    /// What is said about a subject (notifications, the `me` stream): `task_id` or
    /// `bounty_id`.
    Subjects,
}

impl Scope {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Scope::Events => &["aggregate_id"],
            Scope::Bounties => &["bounty_id", "id"],
            Scope::Tasks => &["id"],
            Scope::Subjects => &["task_id", "bounty_id"],
        }
    }
}

/// The event field a JSON key holds: a read model's or message's name for it, or its own.
fn field_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "title" => field::TITLE,
        "description" => field::DESCRIPTION,
        "pitch" => field::PITCH,
        "text" | "deliverable_text" => field::TEXT,
        "link" | "deliverable_link" => field::LINK,
        "reason" | "rejection_reason" | "dispute_reason" => field::REASON,
        "note" => field::NOTE,
        "error" | "last_error" => field::ERROR,
        _ => return None,
    })
}

/// Opens sealed texts: in answers (JSON), and for the projections that need words.
#[derive(Clone)]
pub struct Opener {
    keyring: Keyring,
}

impl Opener {
    pub fn new(keyring: Keyring) -> Self {
        Self { keyring }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// What the bounty search vector's words are hashed with.
    pub fn search_key(&self) -> &str {
        self.keyring.search_key()
    }

    /// `answer` as JSON, every sealed text in it opened.
    pub async fn to_json(
        &self,
        answer: &impl Serialize,
        scope: Scope,
    ) -> Result<Value, PrivacyError> {
        let mut value = serde_json::to_value(answer)?;
        self.open(&mut value, scope).await?;
        Ok(value)
    }

    /// Opens every sealed text in `value`, in place, and hides the erased legacy ones.
    pub async fn open(&self, value: &mut Value, scope: Scope) -> Result<(), PrivacyError> {
        let mut authors = HashSet::new();
        authors_in(value, &mut authors);
        let Some(seen) = self.seen(authors).await? else {
            return Ok(());
        };
        open_in(value, None, None, scope, &seen);
        Ok(())
    }

    /// Opens every sealed text in the payloads of `events`, each under its own aggregate, and
    /// hides the erased legacy ones.
    pub async fn open_events(&self, events: &mut [StoredEvent]) -> Result<(), PrivacyError> {
        let mut authors = HashSet::new();
        for event in events.iter() {
            authors_in(&event.payload, &mut authors);
        }
        let Some(seen) = self.seen(authors).await? else {
            return Ok(());
        };
        for event in events.iter_mut() {
            let aggregate = event.aggregate_id.as_str();
            open_in(
                &mut event.payload,
                Some(aggregate),
                None,
                Scope::Events,
                &seen,
            );
        }
        Ok(())
    }

    /// What opening an answer whose sealed texts are by `authors` needs; `None` when there is
    /// nothing to do (no sealed text, no erased legacy text anywhere).
    async fn seen(&self, authors: HashSet<Uuid>) -> Result<Option<Seen<'_>>, PrivacyError> {
        let legacy = self.keyring.legacy();
        let erased = legacy.erased().await?;
        if authors.is_empty() && erased.is_empty() {
            return Ok(None);
        }
        let keys = if authors.is_empty() {
            Keys::default()
        } else {
            self.keyring.keys(authors).await?
        };
        Ok(Some(Seen {
            keys,
            erased,
            digester: legacy.digester(),
        }))
    }
}

/// The keys of an answer's authors, and the erased legacy texts.
struct Seen<'a> {
    keys: Keys,
    erased: Arc<ErasedTexts>,
    digester: &'a Digester,
}

impl Seen<'_> {
    /// What an answer shows for `text` in `field` of `aggregate`.
    fn shown(
        &self,
        text: &str,
        aggregate: Option<&str>,
        field: Option<&'static str>,
    ) -> Option<String> {
        if seal::is_sealed(text) {
            return Some(
                opened(text, aggregate, field, &self.keys).unwrap_or_else(|| ERASED.to_owned()),
            );
        }
        let (aggregate, field) = (aggregate?, field?);
        self.erased
            .holds(self.digester, aggregate, field, text)
            .then(|| ERASED.to_owned())
    }
}

/// The authors of the sealed strings in `value`.
fn authors_in(value: &Value, authors: &mut HashSet<Uuid>) {
    match value {
        Value::String(s) if seal::is_sealed(s) => {
            authors.extend(seal::author_of(s));
        }
        Value::Array(items) => items.iter().for_each(|item| authors_in(item, authors)),
        Value::Object(map) => map.values().for_each(|v| authors_in(v, authors)),
        _ => {}
    }
}

fn open_in(
    value: &mut Value,
    aggregate: Option<&str>,
    field: Option<&'static str>,
    scope: Scope,
    seen: &Seen<'_>,
) {
    match value {
        Value::String(s) => {
            if let Some(shown) = seen.shown(s, aggregate, field) {
                *s = shown;
            }
        }
        Value::Array(items) => {
            for item in items {
                open_in(item, aggregate, field, scope, seen);
            }
        }
        Value::Object(map) => {
            let own = scope
                .keys()
                .iter()
                .find_map(|key| map.get(*key).and_then(Value::as_str).map(str::to_owned));
            let aggregate = own.as_deref().or(aggregate);
            for (key, child) in map.iter_mut() {
                open_in(child, aggregate, field_of(key), scope, seen);
            }
        }
        _ => {}
    }
}

fn opened(
    sealed: &str,
    aggregate: Option<&str>,
    field: Option<&'static str>,
    keys: &Keys,
) -> Option<String> {
    let key = keys.get(&seal::author_of(sealed)?)?;
    seal::open(key, sealed, aggregate?, field?)
}

/// The projections' view of the opener: words for the bounty search vector.
#[async_trait]
impl bountyline_projections::Opener for Opener {
    async fn open(&self, texts: &[Text<'_>]) -> Result<Vec<Option<String>>, ProjectionError> {
        let transient =
            |e: PrivacyError| ProjectionError::Transient(format!("reading data keys: {e}"));
        let authors = texts.iter().filter_map(|t| seal::author_of(t.text));
        let keys = self.keyring.keys(authors).await.map_err(transient)?;
        let legacy = self.keyring.legacy();
        let erased = legacy
            .erased()
            .await
            .map_err(|e| transient(PrivacyError::Db(e)))?;
        Ok(texts
            .iter()
            .map(|t| {
                if !seal::is_sealed(t.text) {
                    // Written before sealing: its words, unless its author was erased.
                    let gone = erased.holds(legacy.digester(), t.aggregate_id, t.field, t.text);
                    return (!gone).then(|| t.text.to_owned());
                }
                opened(t.text, Some(t.aggregate_id), Some(t.field), &keys)
            })
            .collect())
    }

    fn search_key(&self) -> &str {
        self.keyring.search_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_model_columns_map_to_the_fields_they_copy() {
        assert_eq!(field_of("deliverable_text"), Some("text"));
        assert_eq!(field_of("rejection_reason"), Some("reason"));
        assert_eq!(field_of("last_error"), Some("error"));
        assert_eq!(field_of("queue"), None);
    }
}
