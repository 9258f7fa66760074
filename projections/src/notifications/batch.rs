//! Applies a batch to the feed. Task events, most of the stream, are applied a run at a time:
//! the creators the run's dead-letterings need are read in one query, and the run's task
//! owners and notices are written in one statement each. A posted bounty's row joins the run's
//! writes, and an event that tells nobody anything (most wallet and bounty events) is passed
//! over. An event with notices ends the run (it reads rows that earlier events of the batch
//! may have written) and is told as the per-event apply tells it, decoded once.

use bountyline_domain::bounty::BountyEvent;
use bountyline_domain::task::TaskEvent;
use bountyline_domain::wallet::WalletEvent;
use sqlx::{Postgres, Transaction};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use uuid::Uuid;

use super::apply::{apply_one, dead_letter, id_of, tell_of_bounty, tell_of_wallet, DeadLetter};
use super::notices;
use crate::{ProjectionError, StoredEvent};

type Tx = Transaction<'static, Postgres>;

pub(super) async fn apply(tx: &mut Tx, events: &[StoredEvent]) -> Result<(), ProjectionError> {
    let mut run = Run::default();
    for event in events {
        match event.aggregate_type.as_str() {
            "Task" => {
                let decoded: TaskEvent = event
                    .decode()
                    .map_err(|e| ProjectionError::decode(event, e))?;
                run.tasks.push((id_of(event, "task")?, event, decoded));
            }
            "Bounty" => {
                let bounty_id = id_of(event, "bounty")?;
                let decoded: BountyEvent = event
                    .decode()
                    .map_err(|e| ProjectionError::decode(event, e))?;
                if let BountyEvent::BountyPosted {
                    poster,
                    payment_id,
                    title,
                    ..
                } = decoded
                {
                    run.bounties.push(bounty_id, payment_id, poster, title);
                    continue;
                }
                let notices = notices::of_bounty(bounty_id, &decoded);
                if !notices.is_empty() {
                    run.write(tx).await?;
                    tell_of_bounty(tx, event, bounty_id, notices).await?;
                }
            }
            "Wallet" => {
                let decoded: WalletEvent = event
                    .decode()
                    .map_err(|e| ProjectionError::decode(event, e))?;
                let notices = notices::of_wallet(&decoded);
                if !notices.is_empty() {
                    run.write(tx).await?;
                    tell_of_wallet(tx, event, notices).await?;
                }
            }
            _ => {
                run.write(tx).await?;
                apply_one(tx, event).await?;
            }
        }
    }
    run.write(tx).await
}

/// What a batch writes in one go until an event needs what it wrote.
#[derive(Default)]
struct Run<'a> {
    tasks: Vec<(Uuid, &'a StoredEvent, TaskEvent)>,
    bounties: Bounties,
}

impl Run<'_> {
    async fn write(&mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        apply_task_run(tx, std::mem::take(&mut self.tasks)).await?;
        std::mem::take(&mut self.bounties).write(tx).await
    }
}

/// New `notification_bounties` rows, one array per column.
#[derive(Default)]
struct Bounties {
    bounty_id: Vec<Uuid>,
    payment_id: Vec<Uuid>,
    poster: Vec<Uuid>,
    title: Vec<String>,
}

impl Bounties {
    fn push(&mut self, bounty_id: Uuid, payment_id: Uuid, poster: Uuid, title: String) {
        self.bounty_id.push(bounty_id);
        self.payment_id.push(payment_id);
        self.poster.push(poster);
        self.title.push(title);
    }

    async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.bounty_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO notification_bounties (bounty_id, payment_id, poster, title) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]) \
             ON CONFLICT (bounty_id) DO NOTHING",
        )
        .bind(self.bounty_id)
        .bind(self.payment_id)
        .bind(self.poster)
        .bind(self.title)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

async fn apply_task_run(
    tx: &mut Tx,
    run: Vec<(Uuid, &StoredEvent, TaskEvent)>,
) -> Result<(), ProjectionError> {
    if run.is_empty() {
        return Ok(());
    }
    let dead: Vec<Uuid> = run
        .iter()
        .filter(|(_, _, task)| dead_letter(task).is_some())
        .map(|(id, _, _)| *id)
        .collect();
    // Creators of every task dead-lettered in this run; a creation earlier in the run is added
    // as the fold reaches it (the stored row, if any, wins, as `ON CONFLICT DO NOTHING` does).
    let mut owners: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    if !dead.is_empty() {
        let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT task_id, creator, title FROM notification_task_owners \
             WHERE task_id = ANY($1)",
        )
        .bind(&dead)
        .fetch_all(&mut **tx)
        .await?;
        owners.extend(
            rows.into_iter()
                .map(|(id, creator, title)| (id, (creator, title))),
        );
    }
    let mut new_owners = Owners::default();
    let mut feed = Feed::default();
    for (task_id, event, task) in &run {
        if let TaskEvent::TaskCreated { creator, title, .. } = task {
            if let Entry::Vacant(slot) = owners.entry(*task_id) {
                slot.insert((*creator, title.clone()));
                new_owners.push(*task_id, *creator, title.clone());
            }
            continue;
        }
        let Some(DeadLetter {
            queue,
            attempt,
            error,
        }) = dead_letter(task)
        else {
            continue;
        };
        // A task is always created before it fails; without its creator there is nobody to
        // tell.
        if let Some((creator, title)) = owners.get(task_id) {
            let notice =
                notices::task_dead_lettered(*creator, *task_id, title, queue, attempt, error);
            feed.push(event, notice);
        }
    }
    new_owners.write(tx).await?;
    feed.write(tx).await
}

/// New `notification_task_owners` rows, one array per column.
#[derive(Default)]
struct Owners {
    task_id: Vec<Uuid>,
    creator: Vec<Uuid>,
    title: Vec<String>,
}

impl Owners {
    fn push(&mut self, task_id: Uuid, creator: Uuid, title: String) {
        self.task_id.push(task_id);
        self.creator.push(creator);
        self.title.push(title);
    }

    async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.task_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO notification_task_owners (task_id, creator, title) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) \
             ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(self.task_id)
        .bind(self.creator)
        .bind(self.title)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// New notifications, one array per column; ids are derived as `apply.rs` derives them.
#[derive(Default)]
struct Feed {
    event_id: Vec<Uuid>,
    recipient: Vec<Uuid>,
    kind: Vec<&'static str>,
    subject_id: Vec<Uuid>,
    data: Vec<serde_json::Value>,
    created_at: Vec<chrono::DateTime<chrono::Utc>>,
    position: Vec<i64>,
}

impl Feed {
    fn push(&mut self, event: &StoredEvent, notice: notices::Notice) {
        self.event_id.push(event.event_id);
        self.recipient.push(notice.recipient);
        self.kind.push(notice.kind);
        self.subject_id.push(notice.subject_id);
        self.data.push(serde_json::Value::Object(notice.data));
        self.created_at.push(event.recorded_at);
        self.position.push(event.position);
    }

    async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.event_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, subject_id, data, created_at, position) \
             SELECT md5(event_id::text || '/' || recipient::text)::uuid, recipient, kind, \
                 subject_id, data, created_at, position \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::jsonb[], \
                 $6::timestamptz[], $7::int8[]) \
                 AS n(event_id, recipient, kind, subject_id, data, created_at, position) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(self.event_id)
        .bind(self.recipient)
        .bind(self.kind)
        .bind(self.subject_id)
        .bind(self.data)
        .bind(self.created_at)
        .bind(self.position)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
