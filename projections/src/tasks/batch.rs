//! Applies a batch of task events set-based: the rows the batch touches are read in one
//! query, the events are folded into them in memory, and the changed rows are written back
//! in two statements, a plain insert of the new rows and an update of the stored ones (an
//! upsert costs Postgres a speculative insertion per row, and nearly every row of a catch-up
//! or a rebuild is new). The fold follows `apply.rs` statement by statement (an insert never
//! overwrites, an update needs the row and a lower position), so the outcome is the same as
//! applying the events one by one; `tests/batch_apply.rs` holds the two paths to that.

use bountyline_domain::task::{TaskEvent, TaskStatus};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use std::collections::{HashMap, HashSet};
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
    let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    // A look-up by primary key per id, whatever the table's size: given thousands of ids, the
    // planner would rather scan a table of some hundred thousand rows whole (in parallel), at
    // ten times the cost, than read them through the index.
    let mut rows: HashMap<Uuid, TaskRow> = sqlx::query_as::<_, TaskRow>(
        "SELECT t.id, queue, title, description, priority, payload, result, status, creator, \
         worker, lease_id, lease_expires_at, attempts, max_attempts, progress, note, last_error, \
         bounty_id, created_at, updated_at, queued_at, completed_at, version, position \
         FROM unnest($1::uuid[]) AS k(id) \
         CROSS JOIN LATERAL (SELECT * FROM tasks WHERE tasks.id = k.id LIMIT 1) t",
    )
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|row| (row.id, row))
    .collect();
    let stored: HashSet<Uuid> = rows.keys().copied().collect();

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
    let (mut inserted, mut updated) = (Columns::default(), Columns::default());
    for row in changed.iter().filter_map(|id| rows.remove(id)) {
        match stored.contains(&row.id) {
            true => updated.push(row),
            false => inserted.push(row),
        }
    }
    insert(tx, inserted).await?;
    update(tx, updated).await
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

/// The tasks table's columns in the order [`Columns::bind`] binds them, and the rows it binds
/// as one array a column: the insert and the update read the same list.
const COLUMNS: &str = "id, queue, title, description, priority, payload, result, status, \
     creator, worker, lease_id, lease_expires_at, attempts, max_attempts, progress, note, \
     last_error, bounty_id, created_at, updated_at, queued_at, completed_at, version, position";
const ROWS: &str = "UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], \
           $6::jsonb[], $7::jsonb[], $8::text[], $9::uuid[], $10::uuid[], $11::uuid[], \
           $12::timestamptz[], $13::int4[], $14::int4[], $15::int2[], $16::text[], $17::text[], \
           $18::uuid[], $19::timestamptz[], $20::timestamptz[], $21::timestamptz[], \
           $22::timestamptz[], $23::int8[], $24::int8[])";

/// Inserts rows the table did not hold when the batch read it. The checkpoint's lock keeps
/// every other applier of this projection out meanwhile; were a row there all the same, the
/// insert fails and the runner applies the batch event by event.
async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    c: Columns,
) -> Result<(), ProjectionError> {
    if c.id.is_empty() {
        return Ok(());
    }
    c.bind(sqlx::query(&format!(
        "INSERT INTO tasks ({COLUMNS}) SELECT * FROM {ROWS}"
    )))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces stored rows. The position guard repeats the per-event one; the checkpoint lock
/// already keeps other appliers out.
async fn update(
    tx: &mut Transaction<'static, Postgres>,
    c: Columns,
) -> Result<(), ProjectionError> {
    if c.id.is_empty() {
        return Ok(());
    }
    c.bind(sqlx::query(&format!(
        "UPDATE tasks SET queue = r.queue, title = r.title, description = r.description, \
           priority = r.priority, payload = r.payload, result = r.result, status = r.status, \
           creator = r.creator, worker = r.worker, lease_id = r.lease_id, \
           lease_expires_at = r.lease_expires_at, attempts = r.attempts, \
           max_attempts = r.max_attempts, progress = r.progress, note = r.note, \
           last_error = r.last_error, bounty_id = r.bounty_id, created_at = r.created_at, \
           updated_at = r.updated_at, queued_at = r.queued_at, completed_at = r.completed_at, \
           version = r.version, position = r.position \
         FROM {ROWS} AS r({COLUMNS}) \
         WHERE tasks.id = r.id AND tasks.position < r.position"
    )))
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

type Query<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

impl Columns {
    /// Binds the columns as `$1` to `$24`, in the table's order.
    fn bind(self, query: Query<'_>) -> Query<'_> {
        query
            .bind(self.id)
            .bind(self.queue)
            .bind(self.title)
            .bind(self.description)
            .bind(self.priority)
            .bind(self.payload)
            .bind(self.result)
            .bind(self.status)
            .bind(self.creator)
            .bind(self.worker)
            .bind(self.lease_id)
            .bind(self.lease_expires_at)
            .bind(self.attempts)
            .bind(self.max_attempts)
            .bind(self.progress)
            .bind(self.note)
            .bind(self.last_error)
            .bind(self.bounty_id)
            .bind(self.created_at)
            .bind(self.updated_at)
            .bind(self.queued_at)
            .bind(self.completed_at)
            .bind(self.version)
            .bind(self.position)
    }

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
