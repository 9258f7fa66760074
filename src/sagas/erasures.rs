//! The erasure process manager (ADR 7): for every `PersonErased`, the scrub the erasing
//! handler runs after its append (`privacy::erasure::scrub`), in the process managers'
//! transaction. The handler's own scrub makes this a repeat that changes nothing; after a
//! crash between the append and the scrub, this is what finishes the erasure.

use bountyline_domain::person::PersonEvent;
use bountyline_projections::{ProjectionError, StoredEvent};
use sqlx::{Postgres, Transaction};

use crate::privacy::{erasure, Keyring};

/// Scrubs every person erased in `events`, in `tx` (committed with the process managers'
/// checkpoint, so a crash runs it again). This process's keyring forgets them at once; one
/// that reads the key again before `tx` commits keeps it for at most `privacy.key_cache_ms`.
pub async fn finish(
    tx: &mut Transaction<'static, Postgres>,
    keyring: &Keyring,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    for event in events {
        if event.aggregate_type != "Person" {
            continue;
        }
        let PersonEvent::PersonErased { person, at, .. } = event
            .decode::<PersonEvent>()
            .map_err(|e| ProjectionError::decode(event, e))?;
        let revoked = erasure::scrub(tx, keyring, person, at).await?;
        keyring.forget(person);
        if !revoked.is_empty() {
            tracing::info!(
                user_id = %person,
                sessions = revoked.len(),
                "an erasure was finished by the process managers"
            );
        }
    }
    Ok(())
}
