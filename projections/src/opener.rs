//! What a projection that needs the words of people's texts is given (ADR 7): the texts in
//! events are sealed under their authors' keys, and only the server holds the keyring. The
//! one read model that needs words, the bounty search vector, opens them while it applies.

use async_trait::async_trait;

use crate::ProjectionError;

/// One text an event holds, and where: the aggregate's id and the event's field name, what a
/// sealed text is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    pub aggregate_id: &'a str,
    pub field: &'static str,
    pub text: &'a str,
}

#[async_trait]
pub trait Opener: Send + Sync + 'static {
    /// Each text's words, in order: a plain text (written before texts were sealed) as it
    /// is, a sealed one opened; `None` for one that does not open (its author's key was
    /// destroyed, or it was altered). A failure to read keys is [`ProjectionError::Transient`].
    async fn open(&self, texts: &[Text<'_>]) -> Result<Vec<Option<String>>, ProjectionError>;

    /// The secret each indexed word is hashed with ([`crate::bounties::search`]), so that the
    /// search vector holds no word a person wrote; derived from the key-encryption key.
    fn search_key(&self) -> &str;
}
