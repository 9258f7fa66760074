//! Applies task events to the `tasks` table. Every update is guarded by the row's last applied
//! position, so an event applied twice changes nothing.

use async_trait::async_trait;
use bountyline_domain::task::{TaskEvent, TaskStatus};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Projection, ProjectionError, StoredEvent};

pub struct TasksProjection;

#[async_trait]
impl Projection for TasksProjection {
    fn name(&self) -> &'static str {
        "tasks"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tasks"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        // Every index but the primary key: queries read through them, the apply never does.
        &[
            "tasks_claim_order_idx",
            "tasks_lease_expiry_idx",
            "tasks_list_idx",
            "tasks_queue_status_idx",
            "tasks_creator_idx",
            "tasks_worker_idx",
        ]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&["Task"])
    }

    async fn apply_batch(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        super::batch::apply(tx, events).await
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != "Task" {
            return Ok(());
        }
        let id = event
            .aggregate_uuid()
            .ok_or_else(|| ProjectionError::Invalid(format!("task id {}", event.aggregate_id)))?;
        let task: TaskEvent = event
            .decode()
            .map_err(|e| ProjectionError::decode(event, e))?;
        let (pos, version) = (event.position, event.sequence);
        match task {
            TaskEvent::TaskCreated {
                queue,
                title,
                description,
                priority,
                payload,
                max_attempts,
                bounty_id,
                creator,
                created_at,
            } => {
                sqlx::query(
                    "INSERT INTO tasks (id, queue, title, description, priority, payload, status, \
                     creator, attempts, max_attempts, bounty_id, created_at, updated_at, \
                     queued_at, version, position) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, 0, $8, $9, $10, $10, $10, $11, $12) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(queue)
                .bind(title)
                .bind(description)
                .bind(i16::from(priority))
                .bind(payload)
                .bind(creator)
                .bind(max_attempts as i32)
                .bind(bounty_id)
                .bind(created_at)
                .bind(version)
                .bind(pos)
                .execute(&mut **tx)
                .await?;
            }
            TaskEvent::TaskClaimed {
                worker,
                lease_id,
                attempt,
                lease_expires_at,
                claimed_at,
                ..
            } => {
                sqlx::query(
                    "UPDATE tasks SET status = 'claimed', worker = $3, lease_id = $4, \
                     lease_expires_at = $5, attempts = $6, progress = NULL, note = NULL, \
                     queued_at = NULL, updated_at = $7, version = $8, position = $2 \
                     WHERE id = $1 AND position < $2",
                )
                .bind(id)
                .bind(pos)
                .bind(worker)
                .bind(lease_id)
                .bind(lease_expires_at)
                .bind(attempt as i32)
                .bind(claimed_at)
                .bind(version)
                .execute(&mut **tx)
                .await?;
            }
            TaskEvent::TaskHeartbeatRecorded {
                progress,
                note,
                lease_expires_at,
                at,
                ..
            } => {
                sqlx::query(
                    "UPDATE tasks SET progress = coalesce($3, progress), note = coalesce($4, note), \
                     lease_expires_at = $5, updated_at = $6, version = $7, position = $2 \
                     WHERE id = $1 AND position < $2",
                )
                .bind(id)
                .bind(pos)
                .bind(progress.map(i16::from))
                .bind(note)
                .bind(lease_expires_at)
                .bind(at)
                .bind(version)
                .execute(&mut **tx)
                .await?;
            }
            TaskEvent::TaskCompleted {
                result,
                completed_at,
                ..
            } => {
                sqlx::query(
                    "UPDATE tasks SET status = 'completed', result = $3, lease_id = NULL, \
                     lease_expires_at = NULL, progress = 100, completed_at = $4, \
                     updated_at = $4, version = $5, position = $2 \
                     WHERE id = $1 AND position < $2",
                )
                .bind(id)
                .bind(pos)
                .bind(result)
                .bind(completed_at)
                .bind(version)
                .execute(&mut **tx)
                .await?;
            }
            TaskEvent::TaskFailed {
                error,
                outcome,
                failed_at,
                ..
            } => {
                end_attempt(
                    tx,
                    id,
                    pos,
                    version,
                    outcome.status(),
                    Some(error),
                    failed_at,
                )
                .await?;
            }
            TaskEvent::TaskLeaseExpired {
                outcome,
                expired_at,
                ..
            } => {
                let note = Some("lease expired".to_owned());
                end_attempt(tx, id, pos, version, outcome.status(), note, expired_at).await?;
            }
            TaskEvent::TaskCancelled { cancelled_at, .. } => {
                sqlx::query(
                    "UPDATE tasks SET status = 'cancelled', lease_id = NULL, \
                     lease_expires_at = NULL, queued_at = NULL, updated_at = $3, version = $4, \
                     position = $2 WHERE id = $1 AND position < $2",
                )
                .bind(id)
                .bind(pos)
                .bind(cancelled_at)
                .bind(version)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }
}

/// A failed or expired attempt: the lease ends and the task is requeued or dead-lettered.
async fn end_attempt(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
    position: i64,
    version: i64,
    status: TaskStatus,
    error: Option<String>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let queued_at = (status == TaskStatus::Queued).then_some(at);
    sqlx::query(
        "UPDATE tasks SET status = $3, last_error = $4, lease_id = NULL, lease_expires_at = NULL, \
         queued_at = $5, updated_at = $6, version = $7, position = $2 \
         WHERE id = $1 AND position < $2",
    )
    .bind(id)
    .bind(position)
    .bind(status.as_str())
    .bind(error)
    .bind(queued_at)
    .bind(at)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
