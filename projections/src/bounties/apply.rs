//! Applies bounty events to `bounties` and `bounty_applications`. Every row is guarded by its
//! last applied position, so an event applied twice changes nothing; every timestamp comes
//! from the event, so a rebuild writes exactly what the live run wrote.
//!
//! Accepting one application leaves the others `pending`, as the aggregate does: the bounty's
//! own status (`assigned` and beyond) already says that they can no longer be accepted, and
//! the read model never shows a state the aggregate does not hold.

use async_trait::async_trait;
use bountyline_domain::bounty::{ApplicationStatus, BountyEvent};
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use std::sync::Arc;
use uuid::Uuid;

use super::words::{self, Posting};
use crate::{Opener, Projection, ProjectionError, StoredEvent};

/// The bounties read model; its search vector indexes the words `opener` opens.
pub struct BountiesProjection {
    opener: Arc<dyn Opener>,
}

impl BountiesProjection {
    pub fn new(opener: Arc<dyn Opener>) -> Self {
        Self { opener }
    }
}

#[async_trait]
impl Projection for BountiesProjection {
    fn name(&self) -> &'static str {
        "bounties"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["bounties", "bounty_applications"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        // The apply reads rows by id only.
        &[
            "bounties_board_idx",
            "bounties_created_idx",
            "bounties_expiry_idx",
            "bounties_hunter_idx",
            "bounties_poster_idx",
            "bounties_reward_idx",
            "bounties_search_idx",
            "bounties_tags_idx",
            "bounty_applications_bounty_idx",
            "bounty_applications_hunter_idx",
        ]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        // A person's erasure takes their words out of the search vector.
        Some(&["Bounty", "Person"])
    }

    async fn apply_batch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        super::batch::apply(tx, events, self.opener.as_ref()).await?;
        super::erased::forget(tx, events).await
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let Some((id, bounty)) = decode(event)? else {
            return super::erased::forget(tx, std::slice::from_ref(event)).await;
        };
        let row = Row {
            id,
            position: event.position,
            version: event.sequence,
        };
        if let BountyEvent::BountyPosted {
            title, description, ..
        } = &bounty
        {
            let posting = Posting {
                aggregate_id: &event.aggregate_id,
                title,
                description,
            };
            let words = words::of(self.opener.as_ref(), &[posting]).await?;
            let words = words.into_iter().next().unwrap_or_default();
            return posted(tx, &row, bounty, &words, self.opener.search_key()).await;
        }
        details(tx, &row, &bounty).await?;
        row.touch(tx, &bounty).await?;
        Ok(())
    }
}

/// The bounty's id and its event; `None` for another aggregate's event. Both paths decode
/// here, so they fail on the same events.
pub(super) fn decode(event: &StoredEvent) -> Result<Option<(Uuid, BountyEvent)>, ProjectionError> {
    if event.aggregate_type != "Bounty" {
        return Ok(None);
    }
    let id = event
        .aggregate_uuid()
        .ok_or_else(|| ProjectionError::Invalid(format!("bounty id {}", event.aggregate_id)))?;
    let bounty: BountyEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    Ok(Some((id, bounty)))
}

/// The bounty row an event updates, and where that event sits.
struct Row {
    id: Uuid,
    position: i64,
    version: i64,
}

async fn posted(
    tx: &mut Transaction<'static, Postgres>,
    row: &Row,
    event: BountyEvent,
    words: &str,
    search_key: &str,
) -> Result<(), ProjectionError> {
    let BountyEvent::BountyPosted {
        poster,
        payment_id,
        title,
        description,
        reward,
        deadline,
        tags,
        at,
    } = event
    else {
        return Ok(());
    };
    sqlx::query(&format!(
        "INSERT INTO bounties (id, poster, title, description, reward_amount, reward_currency, \
         deadline, tags, status, payment_id, created_at, updated_at, version, position, search) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'funding', $9, $10, $10, $11, $12, {}) \
         ON CONFLICT (id) DO NOTHING",
        super::search::vector("$13", "$14")
    ))
    .bind(row.id)
    .bind(poster)
    .bind(title)
    .bind(description)
    .bind(reward.amount())
    .bind(reward.currency().as_str())
    .bind(deadline)
    .bind(tags)
    .bind(payment_id)
    .bind(at)
    .bind(row.version)
    .bind(row.position)
    .bind(words)
    .bind(search_key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What an event changes besides status, hunter and the refund flag: its application, or the
/// bounty's work and reasons. Runs before [`Row::touch`], under the same guard, and leaves
/// the row's position alone so that `touch` still applies.
async fn details(
    tx: &mut Transaction<'static, Postgres>,
    row: &Row,
    event: &BountyEvent,
) -> Result<(), ProjectionError> {
    match event {
        BountyEvent::ApplicationSubmitted {
            application_id,
            hunter,
            pitch,
            at,
            ..
        } => {
            sqlx::query(
                "INSERT INTO bounty_applications (id, bounty_id, hunter, pitch, status, \
                 created_at, updated_at, position) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(application_id)
            .bind(row.id)
            .bind(hunter)
            .bind(pitch)
            .bind(at)
            .bind(row.position)
            .execute(&mut **tx)
            .await?;
        }
        BountyEvent::ApplicationWithdrawn {
            application_id, at, ..
        } => {
            application_status(tx, row, *application_id, ApplicationStatus::Withdrawn, *at).await?;
        }
        BountyEvent::ApplicationAccepted {
            application_id, at, ..
        } => {
            application_status(tx, row, *application_id, ApplicationStatus::Accepted, *at).await?;
        }
        BountyEvent::WorkSubmitted {
            text,
            link,
            revision,
            ..
        } => {
            sqlx::query(
                "UPDATE bounties SET deliverable_text = $3, deliverable_link = $4, revision = $5, \
                 rejection_reason = NULL WHERE id = $1 AND position < $2",
            )
            .bind(row.id)
            .bind(row.position)
            .bind(text)
            .bind(link)
            .bind(i32::try_from(*revision).unwrap_or(i32::MAX))
            .execute(&mut **tx)
            .await?;
        }
        BountyEvent::WorkRejected { reason, .. } => {
            sqlx::query(
                "UPDATE bounties SET rejection_reason = $3 WHERE id = $1 AND position < $2",
            )
            .bind(row.id)
            .bind(row.position)
            .bind(reason)
            .execute(&mut **tx)
            .await?;
        }
        BountyEvent::BountyDisputed { reason, .. } => {
            sqlx::query("UPDATE bounties SET dispute_reason = $3 WHERE id = $1 AND position < $2")
                .bind(row.id)
                .bind(row.position)
                .bind(reason)
                .execute(&mut **tx)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn application_status(
    tx: &mut Transaction<'static, Postgres>,
    row: &Row,
    application_id: Uuid,
    status: ApplicationStatus,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bounty_applications SET status = $3, updated_at = $4, position = $2 \
         WHERE id = $1 AND position < $2",
    )
    .bind(application_id)
    .bind(row.position)
    .bind(status.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Row {
    /// Moves the bounty row to this event: its status (per [`BountyEvent::status_after`]),
    /// the hunter once accepted, the refund flag, and version, position and `updated_at`.
    async fn touch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &BountyEvent,
    ) -> Result<(), sqlx::Error> {
        let hunter = match event {
            BountyEvent::ApplicationAccepted { hunter, .. } => Some(*hunter),
            _ => None,
        };
        let refunded = matches!(event, BountyEvent::BountyRefunded { .. });
        sqlx::query(
            "UPDATE bounties SET status = coalesce($3, status), hunter = coalesce($4, hunter), \
             refunded = refunded OR $5, updated_at = $6, version = $7, position = $2 \
             WHERE id = $1 AND position < $2",
        )
        .bind(self.id)
        .bind(self.position)
        .bind(event.status_after().map(|s| s.as_str()))
        .bind(hunter)
        .bind(refunded)
        .bind(at(event))
        .bind(self.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// When the event happened, by the aggregate's clock.
pub(super) fn at(event: &BountyEvent) -> DateTime<Utc> {
    match event {
        BountyEvent::BountyPosted { at, .. }
        | BountyEvent::BountyOpened { at, .. }
        | BountyEvent::BountyUnfunded { at, .. }
        | BountyEvent::BountyFundedAfterCancel { at, .. }
        | BountyEvent::ApplicationSubmitted { at, .. }
        | BountyEvent::ApplicationWithdrawn { at, .. }
        | BountyEvent::ApplicationAccepted { at, .. }
        | BountyEvent::WorkSubmitted { at, .. }
        | BountyEvent::WorkApproved { at, .. }
        | BountyEvent::WorkRejected { at, .. }
        | BountyEvent::BountyCancelled { at, .. }
        | BountyEvent::BountyDisputed { at, .. }
        | BountyEvent::DisputeResolved { at, .. }
        | BountyEvent::BountyExpired { at, .. }
        | BountyEvent::BountyPaid { at, .. }
        | BountyEvent::BountyRefunded { at, .. } => *at,
    }
}
