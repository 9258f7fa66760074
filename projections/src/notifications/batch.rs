//! Applies a batch to the feed. Task events, nearly all of the stream, are applied a run at a
//! time: the creators the run's dead-letterings need are read in one query, and the run's
//! task owners and notices are written in one statement each. Any other event ends the run
//! and goes through the per-event apply, since bounty, wallet and inbox events read rows that
//! earlier events of the batch may have written.

use bountyline_domain::task::TaskEvent;
use sqlx::{Postgres, Transaction};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use uuid::Uuid;

use super::apply::{apply_one, dead_letter, id_of, DeadLetter};
use super::notices;
use crate::{ProjectionError, StoredEvent};

type Tx = Transaction<'static, Postgres>;

pub(super) async fn apply(tx: &mut Tx, events: &[StoredEvent]) -> Result<(), ProjectionError> {
    let mut run = Vec::new();
    for event in events {
        if event.aggregate_type == "Task" {
            let decoded: TaskEvent = event
                .decode()
                .map_err(|e| ProjectionError::decode(event, e))?;
            run.push((id_of(event, "task")?, event, decoded));
        } else {
            apply_task_run(tx, std::mem::take(&mut run)).await?;
            apply_one(tx, event).await?;
        }
    }
    apply_task_run(tx, run).await
}

async fn apply_task_run(
    tx: &mut Tx,
    run: Vec<(Uuid, &StoredEvent, TaskEvent)>,
) -> Result<(), ProjectionError> {
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
