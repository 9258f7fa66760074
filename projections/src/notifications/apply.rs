//! Applies events to the feed. Rows are written once (ids derive from the event and the
//! recipient, `ON CONFLICT DO NOTHING`), a read flag is set once (`read_at IS NULL`), and
//! every time comes from the stored event, so repeats and rebuilds change nothing.

use async_trait::async_trait;
use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::inbox::InboxEvent;
use bountyline_domain::task::{FailureOutcome, TaskEvent};
use bountyline_domain::wallet::WalletEvent;
use serde_json::json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::notices::{self, Notice};
use crate::{Projection, ProjectionError, StoredEvent};

pub struct NotificationsProjection;

type Tx = Transaction<'static, Postgres>;

#[async_trait]
impl Projection for NotificationsProjection {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "notifications",
            "notification_task_owners",
            "notification_bounties",
        ]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        // The feed's indexes by user; a payment's bounty is looked up by
        // `notification_bounties_payment_idx`, which stays.
        &[
            "notifications_user_idx",
            "notifications_user_unread_idx",
            "notifications_unread_idx",
        ]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Bounty", "Wallet", "Task", "Inbox"])
    }

    async fn apply(&self, tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
        apply_one(tx, event).await
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        super::batch::apply(tx, events).await
    }
}

pub(super) async fn apply_one(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    match event.aggregate_type.as_str() {
        "Bounty" => bounty(tx, event).await,
        "Wallet" => wallet(tx, event).await,
        "Task" => task(tx, event).await,
        "Inbox" => inbox(tx, event).await,
        _ => Ok(()),
    }
}

pub(super) fn id_of(event: &StoredEvent, what: &str) -> Result<Uuid, ProjectionError> {
    event
        .aggregate_uuid()
        .ok_or_else(|| ProjectionError::Invalid(format!("{what} id {}", event.aggregate_id)))
}

async fn bounty(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    let bounty_id = id_of(event, "bounty")?;
    let decoded: BountyEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    if let BountyEvent::BountyPosted {
        poster,
        payment_id,
        title,
        ..
    } = &decoded
    {
        sqlx::query(
            "INSERT INTO notification_bounties (bounty_id, payment_id, poster, title) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (bounty_id) DO NOTHING",
        )
        .bind(bounty_id)
        .bind(payment_id)
        .bind(poster)
        .bind(title)
        .execute(&mut **tx)
        .await?;
        return Ok(());
    }
    tell_of_bounty(
        tx,
        event,
        bounty_id,
        notices::of_bounty(bounty_id, &decoded),
    )
    .await
}

/// Writes a bounty event's `notices`, each with the bounty's title.
pub(super) async fn tell_of_bounty(
    tx: &mut Tx,
    event: &StoredEvent,
    bounty_id: Uuid,
    mut notices: Vec<Notice>,
) -> Result<(), ProjectionError> {
    if notices.is_empty() {
        return Ok(());
    }
    let title: Option<String> =
        sqlx::query_scalar("SELECT title FROM notification_bounties WHERE bounty_id = $1")
            .bind(bounty_id)
            .fetch_optional(&mut **tx)
            .await?;
    for notice in &mut notices {
        notice.data.insert("title".into(), json!(title));
    }
    write(tx, event, &notices).await
}

async fn wallet(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    let decoded: WalletEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    tell_of_wallet(tx, event, notices::of_wallet(&decoded)).await
}

/// Writes a wallet event's `notices`, each with the bounty its payment is for.
pub(super) async fn tell_of_wallet(
    tx: &mut Tx,
    event: &StoredEvent,
    mut notices: Vec<Notice>,
) -> Result<(), ProjectionError> {
    for notice in &mut notices {
        let bounty: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT bounty_id, title FROM notification_bounties WHERE payment_id = $1",
        )
        .bind(notice.subject_id)
        .fetch_optional(&mut **tx)
        .await?;
        let (bounty_id, title) = bounty.unzip();
        notice.data.insert("bounty_id".into(), json!(bounty_id));
        notice.data.insert("title".into(), json!(title));
    }
    write(tx, event, &notices).await
}

async fn task(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    let task_id = id_of(event, "task")?;
    let decoded: TaskEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    if let TaskEvent::TaskCreated { creator, title, .. } = &decoded {
        sqlx::query(
            "INSERT INTO notification_task_owners (task_id, creator, title) \
             VALUES ($1, $2, $3) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(task_id)
        .bind(creator)
        .bind(title)
        .execute(&mut **tx)
        .await?;
        return Ok(());
    }
    let Some(DeadLetter {
        queue,
        attempt,
        error,
    }) = dead_letter(&decoded)
    else {
        return Ok(());
    };
    let owner: Option<(Uuid, String)> =
        sqlx::query_as("SELECT creator, title FROM notification_task_owners WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((creator, title)) = owner else {
        // A task is always created before it fails; without its creator there is nobody
        // to tell.
        return Ok(());
    };
    let notice = notices::task_dead_lettered(creator, task_id, &title, queue, attempt, error);
    write(tx, event, &[notice]).await
}

/// What a task's creator is told when the task is dead-lettered.
pub(super) struct DeadLetter<'a> {
    pub queue: &'a str,
    pub attempt: u32,
    pub error: &'a str,
}

/// The dead-lettering in a task event, if it is one.
pub(super) fn dead_letter(event: &TaskEvent) -> Option<DeadLetter<'_>> {
    match event {
        TaskEvent::TaskFailed {
            queue,
            attempt,
            outcome: FailureOutcome::DeadLettered,
            error,
            ..
        } => Some(DeadLetter {
            queue,
            attempt: *attempt,
            error,
        }),
        TaskEvent::TaskLeaseExpired {
            queue,
            attempt,
            outcome: FailureOutcome::DeadLettered,
            ..
        } => Some(DeadLetter {
            queue,
            attempt: *attempt,
            error: "lease expired",
        }),
        _ => None,
    }
}

async fn inbox(tx: &mut Tx, event: &StoredEvent) -> Result<(), ProjectionError> {
    let decoded: InboxEvent = event
        .decode()
        .map_err(|e| ProjectionError::decode(event, e))?;
    match decoded {
        InboxEvent::NotificationsRead {
            owner,
            notification_ids,
            at,
        } => {
            sqlx::query(
                "UPDATE notifications SET read_at = $3 \
                 WHERE user_id = $1 AND id = ANY($2) AND read_at IS NULL",
            )
            .bind(owner)
            .bind(notification_ids)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Writes each notice once. The id is the md5 of the event id and the recipient, computed
/// by Postgres (the workspace's uuid has no v5 hashing): one event, one recipient, one row.
async fn write(
    tx: &mut Tx,
    event: &StoredEvent,
    notices: &[Notice],
) -> Result<(), ProjectionError> {
    for notice in notices {
        sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, subject_id, data, created_at, position) \
             VALUES (md5($1::text || '/' || $2::text)::uuid, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.event_id)
        .bind(notice.recipient)
        .bind(notice.kind)
        .bind(notice.subject_id)
        .bind(serde_json::Value::Object(notice.data.clone()))
        .bind(event.recorded_at)
        .bind(event.position)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
