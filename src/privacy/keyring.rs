//! Each person's data key (ADR 7): made at their first sealed text, stored in `person_keys`
//! wrapped (XChaCha20-Poly1305) by the key-encryption key `privacy.key`, and kept opened in
//! memory for at most `privacy.key_cache_ms`. A person whose `wrapped_key` is NULL is erased:
//! their texts no longer open anywhere.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::legacy::Legacy;
use super::seal;
use crate::config::{Settings, PRIVACY_KEY_BYTES};

const NONCE_BYTES: usize = 24;

fn search_key(kek: &[u8; PRIVACY_KEY_BYTES]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"bountyline search words v1\0")
        .chain_update(kek)
        .finalize();
    crate::http::signature::to_hex(&digest)
}

/// Why a text could not be sealed, or keys not read.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// The person was erased: nothing more is sealed for them.
    #[error("person {0} was erased")]
    Erased(Uuid),
    /// A stored key that the configured `privacy.key` does not open: the wrong key-encryption
    /// key, or an altered row. Never answered with a made-up key.
    #[error("the data key of person {0} does not open under privacy.key")]
    Unwrap(Uuid),
    #[error("sealing failed")]
    Seal,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("serializing an answer: {0}")]
    Json(#[from] serde_json::Error),
}

/// The keyring of one process. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    kek: XChaCha20Poly1305,
    /// What the bounty search vector's words are hashed with: derived from the key-encryption
    /// key, so a dump of the database cannot be searched for a guessed word without it.
    search_key: String,
    keep: Duration,
    kept: Mutex<HashMap<Uuid, Kept>>,
    /// The erased legacy texts (written before sealing), kept as long as keys are.
    legacy: Legacy,
}

/// What the keyring knows of a person, and until when it may trust it.
struct Kept {
    key: Option<XChaCha20Poly1305>,
    until: Instant,
}

/// The data keys of the authors an answer names. An author missing here has no key (erased,
/// or never sealed anything): their texts do not open.
#[derive(Default)]
pub struct Keys(HashMap<Uuid, XChaCha20Poly1305>);

impl Keys {
    pub fn get(&self, author: &Uuid) -> Option<&XChaCha20Poly1305> {
        self.0.get(author)
    }
}

/// Seals texts for one author, their key read once.
pub struct Sealer {
    author: Uuid,
    key: XChaCha20Poly1305,
}

impl Sealer {
    /// A sealer for `author` under a key made now and never stored: what it seals opens
    /// nowhere. The re-seal seals an erased person's old texts with one.
    pub fn throwaway(author: Uuid) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            author,
            key: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// `text` sealed for `field` of `aggregate_id` (a UUID, as the store writes it).
    pub fn seal(
        &self,
        aggregate_id: Uuid,
        field: &str,
        text: &str,
    ) -> Result<String, PrivacyError> {
        seal::seal(
            &self.key,
            self.author,
            &aggregate_id.to_string(),
            field,
            text,
        )
        .map_err(|_| PrivacyError::Seal)
    }
}

impl Keyring {
    /// The keyring under `privacy.key`; a missing or malformed key is refused here, at start.
    pub fn new(pool: PgPool, settings: &Settings) -> Result<Self, config::ConfigError> {
        let keep = Duration::from_millis(settings.privacy.key_cache_ms);
        Ok(Self::with_key(pool, settings.privacy_key()?, keep))
    }

    /// The keyring under the key-encryption key `kek`, keeping opened keys for `keep`.
    pub fn with_key(pool: PgPool, kek: [u8; PRIVACY_KEY_BYTES], keep: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                legacy: Legacy::new(pool.clone(), &kek, keep),
                pool,
                kek: XChaCha20Poly1305::new(&kek.into()),
                search_key: search_key(&kek),
                keep,
                kept: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A sealer for `author`, whose data key is made now if they have none yet. Two processes
    /// making it at once end with one: the first insert wins, and both use what it stored.
    pub async fn sealer(&self, author: Uuid) -> Result<Sealer, PrivacyError> {
        let key = match self.kept(author) {
            Some(Some(key)) => key,
            Some(None) => return Err(PrivacyError::Erased(author)),
            None => match self.read(author).await? {
                Some(key) => key.ok_or(PrivacyError::Erased(author))?,
                None => self.make(author).await?,
            },
        };
        Ok(Sealer { author, key })
    }

    /// The data keys of `authors` that exist and are not erased, read in one query for those
    /// not kept in memory.
    pub async fn keys(
        &self,
        authors: impl IntoIterator<Item = Uuid>,
    ) -> Result<Keys, PrivacyError> {
        let mut keys = HashMap::new();
        let mut missing = Vec::new();
        let mut asked = HashSet::new();
        for author in authors {
            if !asked.insert(author) {
                continue;
            }
            match self.kept(author) {
                Some(Some(key)) => {
                    keys.insert(author, key);
                }
                Some(None) => {}
                None => missing.push(author),
            }
        }
        if !missing.is_empty() {
            let rows: Vec<(Uuid, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT user_id, wrapped_key FROM person_keys WHERE user_id = ANY($1)",
            )
            .bind(&missing)
            .fetch_all(&self.inner.pool)
            .await?;
            for (author, wrapped) in rows {
                match self.held(author, wrapped) {
                    Ok(Some(key)) => {
                        keys.insert(author, key);
                    }
                    Ok(None) => {}
                    // One bad row makes its author's texts unreadable, not the whole answer.
                    Err(e) => tracing::error!(error = %e, "a data key does not open"),
                }
            }
        }
        Ok(Keys(keys))
    }

    /// Whether `person`'s data key was destroyed (they were erased), read from the store now.
    /// Someone who never sealed anything has no key and is not erased.
    pub async fn erased(&self, person: Uuid) -> Result<bool, PrivacyError> {
        let erased: Option<bool> =
            sqlx::query_scalar("SELECT wrapped_key IS NULL FROM person_keys WHERE user_id = $1")
                .bind(person)
                .fetch_optional(&self.inner.pool)
                .await?;
        Ok(erased.unwrap_or(false))
    }

    /// The secret the bounty search vector's words are hashed with (hex).
    pub fn search_key(&self) -> &str {
        &self.inner.search_key
    }

    /// The erased legacy texts: what the opener looks each plain text up in.
    pub fn legacy(&self) -> &Legacy {
        &self.inner.legacy
    }

    /// Drops what this process keeps of `person` (and of the erased legacy texts, which their
    /// erasure may have added to), so that its next use reads the store.
    pub fn forget(&self, person: Uuid) {
        self.lock().remove(&person);
        self.inner.legacy.forget();
    }

    /// What is kept of `person` and still fresh: `Some(None)` for erased.
    fn kept(&self, person: Uuid) -> Option<Option<XChaCha20Poly1305>> {
        let kept = self.lock();
        let entry = kept.get(&person)?;
        (entry.until > Instant::now()).then(|| entry.key.clone())
    }

    fn keep(&self, person: Uuid, key: Option<XChaCha20Poly1305>) {
        if self.inner.keep.is_zero() {
            return;
        }
        let until = Instant::now() + self.inner.keep;
        let mut kept = self.lock();
        // Bounded by the people active within `keep`: expired entries go as new ones come.
        if kept.len() >= 4096 {
            let now = Instant::now();
            kept.retain(|_, entry| entry.until > now);
        }
        kept.insert(person, Kept { key, until });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Kept>> {
        self.inner.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `person`'s row: `None` without one, `Some(None)` when erased.
    async fn read(&self, person: Uuid) -> Result<Option<Option<XChaCha20Poly1305>>, PrivacyError> {
        let row: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT wrapped_key FROM person_keys WHERE user_id = $1")
                .bind(person)
                .fetch_optional(&self.inner.pool)
                .await?;
        row.map(|wrapped| self.held(person, wrapped)).transpose()
    }

    /// A stored row's key, opened and kept.
    fn held(
        &self,
        person: Uuid,
        wrapped: Option<Vec<u8>>,
    ) -> Result<Option<XChaCha20Poly1305>, PrivacyError> {
        let key = wrapped.map(|w| self.unwrap_key(person, &w)).transpose()?;
        self.keep(person, key.clone());
        Ok(key)
    }

    /// Makes `person`'s data key unless another process just did, and returns the stored one.
    async fn make(&self, person: Uuid) -> Result<XChaCha20Poly1305, PrivacyError> {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let wrapped = self.wrap_key(person, &key)?;
        sqlx::query(
            "INSERT INTO person_keys (user_id, wrapped_key) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(person)
        .bind(wrapped)
        .execute(&self.inner.pool)
        .await?;
        match self.read(person).await? {
            Some(Some(key)) => Ok(key),
            _ => Err(PrivacyError::Erased(person)),
        }
    }

    /// `nonce ‖ XChaCha20-Poly1305(privacy.key, data key)`, bound to the person's id so a
    /// wrapped key moved to another row does not open.
    fn wrap_key(&self, person: Uuid, key: &[u8; 32]) -> Result<Vec<u8>, PrivacyError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .inner
            .kek
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: key,
                    aad: person.as_bytes(),
                },
            )
            .map_err(|_| PrivacyError::Seal)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        Ok(wrapped)
    }

    fn unwrap_key(&self, person: Uuid, wrapped: &[u8]) -> Result<XChaCha20Poly1305, PrivacyError> {
        if wrapped.len() <= NONCE_BYTES {
            return Err(PrivacyError::Unwrap(person));
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] =
            nonce.try_into().map_err(|_| PrivacyError::Unwrap(person))?;
        let key = self
            .inner
            .kek
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: person.as_bytes(),
                },
            )
            .map_err(|_| PrivacyError::Unwrap(person))?;
        XChaCha20Poly1305::new_from_slice(&key).map_err(|_| PrivacyError::Unwrap(person))
    }
}
