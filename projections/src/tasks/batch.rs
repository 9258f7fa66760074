//! Applies a batch of task events set-based: the rows the batch touches are read in one
//! query, the events are folded into them in memory, and the changed rows are written back
//! in one statement. The fold follows `apply.rs` statement by statement (an insert never
//! overwrites, an update needs the row and a lower position), so the outcome is the same as
//! applying the events one by one; `tests/batch_apply.rs` holds the two paths to that.

use bountyline_domain::task::{TaskEvent, TaskStatus};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use std::collections::HashMap;
use uuid::Uuid;

use crate::{ProjectionError, StoredEvent};

/// A `tasks` row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    queue: String,
    title: String,
    description: String,
    priority: i16,
    payload: Option<Value>,
    result: Option<Value>,
    status: String,
    creator: Uuid,
    worker: Option<Uuid>,
    lease_id: Option<Uuid>,
    lease_expires_at: Option<DateTime<Utc>>,
    attempts: i32,
    max_attempts: i32,
    progress: Option<i16>,
    note: Option<String>,
    last_error: Option<String>,
    bounty_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    queued_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    version: i64,
    position: i64,
}

pub(super) async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    let mut decoded = Vec::with_capacity(events.len());
    for event in events.iter().filter(|e| e.aggregate_type == "Task") {
        let id = event
            .aggregate_uuid()
            .ok_or_else(|| ProjectionError::Invalid(format!("task id {}", event.aggregate_id)))?;
        let task: TaskEvent = event
            .decode()
            .map_err(|e| ProjectionError::decode(event, e))?;
        decoded.push((id, event, task));
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
    let mut rows: HashMap<Uuid, TaskRow> = sqlx::query_as::<_, TaskRow>(
        "SELECT id, queue, title, description, priority, payload, result, status, creator, \
         worker, lease_id, lease_expires_at, attempts, max_attempts, progress, note, last_error, \
         bounty_id, created_at, updated_at, queued_at, completed_at, version, position \
         FROM tasks WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|row| (row.id, row))
    .collect();

    let mut changed: Vec<Uuid> = Vec::new();
    for (id, event, task) in decoded {
        let (position, version) = (event.position, event.sequence);
        if let TaskEvent::TaskCreated { .. } = &task {
            // Inserted once: a repeated creation leaves the row alone.
            if !rows.contains_key(&id) {
                rows.extend(created(id, position, version, task).map(|row| (id, row)));
                changed.push(id);
            }
            continue;
        }
        // Updates need the row, and skip what it already holds.
        let Some(row) = rows.get_mut(&id).filter(|row| row.position < position) else {
            continue;
        };
        row.fold(task);
        row.version = version;
        row.position = position;
        changed.push(id);
    }
    changed.sort_unstable();
    changed.dedup();
    let changed: Vec<TaskRow> = changed.iter().filter_map(|id| rows.remove(id)).collect();
    write(tx, changed).await
}

/// The row a `TaskCreated` inserts (`None` for any other event).
fn created(id: Uuid, position: i64, version: i64, event: TaskEvent) -> Option<TaskRow> {
    let TaskEvent::TaskCreated {
        queue,
        title,
        description,
        priority,
        payload,
        max_attempts,
        bounty_id,
        creator,
        created_at,
    } = event
    else {
        return None;
    };
    Some(TaskRow {
        id,
        queue,
        title,
        description,
        priority: i16::from(priority),
        payload,
        result: None,
        status: TaskStatus::Queued.as_str().to_owned(),
        creator,
        worker: None,
        lease_id: None,
        lease_expires_at: None,
        attempts: 0,
        max_attempts: max_attempts as i32,
        progress: None,
        note: None,
        last_error: None,
        bounty_id,
        created_at,
        updated_at: created_at,
        queued_at: Some(created_at),
        completed_at: None,
        version,
        position,
    })
}

impl TaskRow {
    /// What each `UPDATE` in `apply.rs` sets, besides version and position.
    fn fold(&mut self, event: TaskEvent) {
        match event {
            // Inserts are handled by the caller.
            TaskEvent::TaskCreated { .. } => {}
            TaskEvent::TaskClaimed {
                worker,
                lease_id,
                attempt,
                lease_expires_at,
                claimed_at,
                ..
            } => {
                self.status = TaskStatus::Claimed.as_str().to_owned();
                self.worker = Some(worker);
                self.lease_id = Some(lease_id);
                self.lease_expires_at = Some(lease_expires_at);
                self.attempts = attempt as i32;
                self.progress = None;
                self.note = None;
                self.queued_at = None;
                self.updated_at = claimed_at;
            }
            TaskEvent::TaskHeartbeatRecorded {
                progress,
                note,
                lease_expires_at,
                at,
                ..
            } => {
                self.progress = progress.map(i16::from).or(self.progress);
                self.note = note.or(self.note.take());
                self.lease_expires_at = Some(lease_expires_at);
                self.updated_at = at;
            }
            TaskEvent::TaskCompleted {
                result,
                completed_at,
                ..
            } => {
                self.status = TaskStatus::Completed.as_str().to_owned();
                self.result = result;
                self.lease_id = None;
                self.lease_expires_at = None;
                self.progress = Some(100);
                self.completed_at = Some(completed_at);
                self.updated_at = completed_at;
            }
            TaskEvent::TaskFailed {
                error,
                outcome,
                failed_at,
                ..
            } => self.end_attempt(outcome.status(), Some(error), failed_at),
            TaskEvent::TaskLeaseExpired {
                outcome,
                expired_at,
                ..
            } => self.end_attempt(
                outcome.status(),
                Some("lease expired".to_owned()),
                expired_at,
            ),
            TaskEvent::TaskCancelled { cancelled_at, .. } => {
                self.status = TaskStatus::Cancelled.as_str().to_owned();
                self.lease_id = None;
                self.lease_expires_at = None;
                self.queued_at = None;
                self.updated_at = cancelled_at;
            }
        }
    }

    fn end_attempt(&mut self, status: TaskStatus, error: Option<String>, at: DateTime<Utc>) {
        self.status = status.as_str().to_owned();
        self.last_error = error;
        self.lease_id = None;
        self.lease_expires_at = None;
        self.queued_at = (status == TaskStatus::Queued).then_some(at);
        self.updated_at = at;
    }
}

/// Inserts or replaces the given rows in one statement. The position guard repeats the
/// per-event one; the checkpoint lock already keeps other appliers out.
async fn write(
    tx: &mut Transaction<'static, Postgres>,
    rows: Vec<TaskRow>,
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = Columns::default();
    for row in rows {
        c.push(row);
    }
    sqlx::query(
        "INSERT INTO tasks (id, queue, title, description, priority, payload, result, status, \
         creator, worker, lease_id, lease_expires_at, attempts, max_attempts, progress, note, \
         last_error, bounty_id, created_at, updated_at, queued_at, completed_at, version, \
         position) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], \
           $6::jsonb[], $7::jsonb[], $8::text[], $9::uuid[], $10::uuid[], $11::uuid[], \
           $12::timestamptz[], $13::int4[], $14::int4[], $15::int2[], $16::text[], $17::text[], \
           $18::uuid[], $19::timestamptz[], $20::timestamptz[], $21::timestamptz[], \
           $22::timestamptz[], $23::int8[], $24::int8[]) \
         ON CONFLICT (id) DO UPDATE SET queue = EXCLUDED.queue, title = EXCLUDED.title, \
           description = EXCLUDED.description, priority = EXCLUDED.priority, \
           payload = EXCLUDED.payload, result = EXCLUDED.result, status = EXCLUDED.status, \
           creator = EXCLUDED.creator, worker = EXCLUDED.worker, lease_id = EXCLUDED.lease_id, \
           lease_expires_at = EXCLUDED.lease_expires_at, attempts = EXCLUDED.attempts, \
           max_attempts = EXCLUDED.max_attempts, progress = EXCLUDED.progress, \
           note = EXCLUDED.note, last_error = EXCLUDED.last_error, \
           bounty_id = EXCLUDED.bounty_id, created_at = EXCLUDED.created_at, \
           updated_at = EXCLUDED.updated_at, queued_at = EXCLUDED.queued_at, \
           completed_at = EXCLUDED.completed_at, version = EXCLUDED.version, \
           position = EXCLUDED.position \
         WHERE tasks.position < EXCLUDED.position",
    )
    .bind(c.id)
    .bind(c.queue)
    .bind(c.title)
    .bind(c.description)
    .bind(c.priority)
    .bind(c.payload)
    .bind(c.result)
    .bind(c.status)
    .bind(c.creator)
    .bind(c.worker)
    .bind(c.lease_id)
    .bind(c.lease_expires_at)
    .bind(c.attempts)
    .bind(c.max_attempts)
    .bind(c.progress)
    .bind(c.note)
    .bind(c.last_error)
    .bind(c.bounty_id)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.queued_at)
    .bind(c.completed_at)
    .bind(c.version)
    .bind(c.position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The rows turned into one array per column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    queue: Vec<String>,
    title: Vec<String>,
    description: Vec<String>,
    priority: Vec<i16>,
    payload: Vec<Option<Value>>,
    result: Vec<Option<Value>>,
    status: Vec<String>,
    creator: Vec<Uuid>,
    worker: Vec<Option<Uuid>>,
    lease_id: Vec<Option<Uuid>>,
    lease_expires_at: Vec<Option<DateTime<Utc>>>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    progress: Vec<Option<i16>>,
    note: Vec<Option<String>>,
    last_error: Vec<Option<String>>,
    bounty_id: Vec<Option<Uuid>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    queued_at: Vec<Option<DateTime<Utc>>>,
    completed_at: Vec<Option<DateTime<Utc>>>,
    version: Vec<i64>,
    position: Vec<i64>,
}

impl Columns {
    fn push(&mut self, row: TaskRow) {
        self.id.push(row.id);
        self.queue.push(row.queue);
        self.title.push(row.title);
        self.description.push(row.description);
        self.priority.push(row.priority);
        self.payload.push(row.payload);
        self.result.push(row.result);
        self.status.push(row.status);
        self.creator.push(row.creator);
        self.worker.push(row.worker);
        self.lease_id.push(row.lease_id);
        self.lease_expires_at.push(row.lease_expires_at);
        self.attempts.push(row.attempts);
        self.max_attempts.push(row.max_attempts);
        self.progress.push(row.progress);
        self.note.push(row.note);
        self.last_error.push(row.last_error);
        self.bounty_id.push(row.bounty_id);
        self.created_at.push(row.created_at);
        self.updated_at.push(row.updated_at);
        self.queued_at.push(row.queued_at);
        self.completed_at.push(row.completed_at);
        self.version.push(row.version);
        self.position.push(row.position);
    }
}
