//! An erased poster's words leave the search vector (ADR 7). The words were indexed while
//! their key opened; once it is destroyed a rebuild indexes nothing for them, so live and
//! rebuilt boards agree only if the live one forgets them too. Nothing else in the read model
//! changes: texts are stored sealed and open as `[erased]` at the answer edge.

use bountyline_domain::person::PersonEvent;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{ProjectionError, StoredEvent};

/// Empties the search vector of every bounty posted by a person erased in `events`. Run after
/// the batch's bounty events: whatever they indexed for that person precedes the erasure.
pub(super) async fn forget(
    tx: &mut Transaction<'static, Postgres>,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let mut people: Vec<Uuid> = Vec::new();
    for event in events.iter().filter(|e| e.aggregate_type == "Person") {
        let PersonEvent::PersonErased { person, .. } = event
            .decode()
            .map_err(|e| ProjectionError::decode(event, e))?;
        people.push(person);
    }
    if people.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE bounties SET search = ''::tsvector \
         WHERE poster = ANY($1) AND search <> ''::tsvector",
    )
    .bind(&people)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
