//! Task commands and queries (API.md "Tasks"): create, claim from a queue, heartbeat,
//! complete, fail, cancel; list and get; queue stats.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::task::{CreateTask, TaskCommand, TaskEvent};
use bountyline_domain::upcast::upcast;
use bountyline_domain::values::{
    bounded_int, Description, JsonDoc, Note, Priority, QueueName, Title,
};
use bountyline_domain::Actor;
use bountyline_projections::tasks::{query, QueueStats, TaskFilter, TaskView};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::extractor::Authenticated;
use crate::commands::{CommandError, Committed};
use crate::http::batched::{BatchFailed, Batched};
use crate::http::command::{execute, execute_expecting, Answer};
use crate::http::conditional::ETag;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::optional_json;
use crate::http::openapi::params::{
    IdempotencyKey, IfMatch, IfNoneMatch, MinPosition, QueuePath, TaskId,
};
use crate::http::openapi::problems::{
    Command, Expecting, Forbidden, Invalid, JsonBody, NotFound, NotModified, RawJsonBody, Read,
};
use crate::http::paging::{self, Items, Page};
use crate::http::sealing::{answer_opened, opened};
use crate::privacy::{field, Scope};
use crate::state::AppState;

const PROJECTION: &str = "tasks";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/tasks", web::post().to(create))
        .route("/v1/tasks", web::get().to(list))
        .route("/v1/tasks/{id}", web::get().to(get))
        .route("/v1/tasks/{id}/heartbeat", web::post().to(heartbeat))
        .route("/v1/tasks/{id}/complete", web::post().to(complete))
        .route("/v1/tasks/{id}/fail", web::post().to(fail))
        .route("/v1/tasks/{id}/cancel", web::post().to(cancel))
        .route("/v1/queues", web::get().to(queues))
        .route("/v1/queues/{queue}/claim", web::post().to(claim));
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateTask, example = json!({"queue": "thumbnails", "title": "Resize image 42",
    "priority": 5, "payload": {"image_id": 42}, "max_attempts": 3}))]
struct CreateRequest {
    #[schema(schema_with = crate::http::openapi::values::queue)]
    queue: String,
    #[schema(schema_with = crate::http::openapi::values::title)]
    title: String,
    #[schema(schema_with = crate::http::openapi::values::optional_description)]
    description: Option<String>,
    /// 0-9, higher is claimed first (default 0).
    #[schema(minimum = 0, maximum = 9)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    priority: Option<i64>,
    /// Anything the worker needs, as JSON (at most 64 KiB serialized; no string or key in it
    /// may hold U+0000, which the store cannot hold: 422 naming `payload`).
    payload: Option<serde_json::Value>,
    /// Claims before the task is dead-lettered (1-100, default 3).
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    max_attempts: Option<i64>,
    /// The bounty this task works towards, if any.
    bounty_id: Option<Uuid>,
}

impl CreateRequest {
    fn into_command(self, actor: Actor, task_id: Uuid) -> ApiResult<CreateTask> {
        Ok(CreateTask {
            task_id,
            queue: QueueName::parse(&self.queue)?,
            title: Title::parse(&self.title)?,
            description: Description::parse(self.description.as_deref().unwrap_or(""))?,
            priority: self
                .priority
                .map(Priority::parse)
                .transpose()?
                .unwrap_or(Priority::DEFAULT),
            payload: self
                .payload
                .map(|p| JsonDoc::parse("payload", p))
                .transpose()?,
            max_attempts: bounded_int("max_attempts", self.max_attempts.unwrap_or(3), 1, 100)?,
            bounty_id: self.bounty_id,
            actor,
            at: Utc::now(),
        })
    }
}

/// Create a task in a queue.
#[utoipa::path(
    post, path = "/v1/tasks", operation_id = "createTask", tag = "tasks",
    params(IdempotencyKey),
    request_body = CreateRequest,
    responses((status = 201, description = "Created", body = Committed), Command, JsonBody),
    security(("bearer" = [])),
)]
async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<CreateRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let (bus, request) = (state.commands.clone(), body.clone());
    let creator = actor.clone();
    let st = state.clone();
    execute(&state, &req, &actor, &body, |ctx| async move {
        let mut create = request.into_command(creator, ctx.mint("task"))?;
        super::queues::register(&st.pool, &st.queues, &create.queue, create.actor.user_id).await?;
        let id = create.task_id;
        let sealer = st.sealer(create.actor.user_id).await?;
        create.title = Title::sealed(sealer.seal(id, field::TITLE, create.title.as_str())?);
        create.description = Description::sealed(sealer.seal(
            id,
            field::DESCRIPTION,
            create.description.as_str(),
        )?);
        let committed = bus.task(id, TaskCommand::Create(create), &ctx).await?;
        Answer::committed(&committed)
    })
    .await
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ClaimTask, example = json!({"lease_seconds": 60}))]
struct ClaimRequest {
    /// How long the claim holds without a heartbeat (1-3600, default 30).
    #[schema(minimum = 1, maximum = 3600)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    lease_seconds: Option<i64>,
}

/// The task a claim handed out, with its lease.
#[derive(Debug, Serialize, ToSchema)]
struct ClaimedTask {
    id: Uuid,
    version: i64,
    position: i64,
    queue: String,
    title: String,
    description: String,
    priority: i16,
    payload: Option<serde_json::Value>,
    attempt: u32,
    max_attempts: i32,
    lease_expires_at: chrono::DateTime<Utc>,
}

/// Claim the best queued task of a queue: highest priority, then oldest.
///
/// Candidates come from the read model, which may lag (send `X-Min-Position` to wait for a
/// task whose position you saw); the aggregate decides, and a task lost to another worker is
/// skipped for the next one. The body may be left out.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/claim", operation_id = "claimTask", tag = "tasks",
    params(QueuePath, IdempotencyKey, MinPosition),
    request_body = Option<ClaimRequest>,
    responses(
        (status = 200, description = "The claimed task and its lease", body = ClaimedTask),
        (status = 204, description = "No task waits in this queue"),
        Command, RawJsonBody, Forbidden,
    ),
    security(("bearer" = [])),
)]
async fn claim(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let queue = QueueName::parse(&path)?;
    let request: ClaimRequest = optional_json(&body)?;
    // Candidates come from the read model: a worker that saw a task's position gets to see
    // the task, not a 204 because the queue's read model lagged.
    state.caught_up(PROJECTION, &req).await?;
    let lease_seconds = bounded_int(
        "lease_seconds",
        request.lease_seconds.unwrap_or(30),
        1,
        3600,
    )?;
    super::queues::may_claim(&state.pool, &queue, &actor).await?;
    let cap = i64::from(state.settings.limits.leases_per_worker);
    if cap > 0 && query::leases_held(&state.pool, actor.user_id).await? >= cap {
        return Err(ApiError::Conflict {
            kind: "lease-limit",
            detail: format!(
                "you hold {cap} leases already; complete or fail some before claiming more"
            ),
        });
    }
    let (st, worker) = (state.clone(), actor.clone());
    execute(&state, &req, &actor, &request, |ctx| async move {
        let state = st;
        let actor = worker;
        // An earlier try under this key may have claimed a task without hearing so; the
        // queue's read model no longer offers that task.
        if ctx.resolve {
            if let Some(c) = state.commands.recorded(&ctx).await? {
                return claimed_recorded(&state, c).await;
            }
        }
        let mut tried: Vec<Uuid> = Vec::new();
        loop {
            let candidates =
                query::claim_candidates(&state.pool, queue.as_str(), &tried, 16).await?;
            if candidates.is_empty() {
                return Ok(Answer::no_content());
            }
            for view in candidates {
                tried.push(view.id);
                let command = TaskCommand::Claim {
                    worker: actor.clone(),
                    lease_id: ctx.mint("lease"),
                    lease_seconds,
                    at: Utc::now(),
                };
                match state.commands.task(view.id, command, &ctx).await {
                    Ok(c) if c.id == view.id.to_string() => {
                        return claimed(&state, view, c.version, c.position).await
                    }
                    // The claim an earlier try under this key stored, of another task.
                    Ok(c) => return claimed_recorded(&state, c).await,
                    Err(CommandError::Domain(_) | CommandError::Conflict(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    })
    .await
}

/// The answer of a claim the store recorded under the request's Idempotency-Key.
async fn claimed_recorded(state: &AppState, c: Committed) -> ApiResult<Answer> {
    let id = Uuid::parse_str(&c.id).map_err(ApiError::internal)?;
    let view = query::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a claimed task {id} has no view")))?;
    claimed(state, view, c.version, c.position).await
}

async fn claimed(
    state: &AppState,
    view: TaskView,
    version: i64,
    position: i64,
) -> ApiResult<Answer> {
    let (event_type, event_version, payload): (String, String, serde_json::Value) = sqlx::query_as(
        "SELECT event_type, event_version, payload FROM events \
         WHERE aggregate_type = 'Task' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(view.id.to_string())
    .bind(version)
    .fetch_one(&state.pool)
    .await?;
    // A recorded claim may predate a change of the event's form: read it in the current one.
    let payload = upcast(&event_type, &event_version, &payload).map_err(ApiError::internal)?;
    let TaskEvent::TaskClaimed {
        attempt,
        lease_expires_at,
        ..
    } = TaskEvent::deserialize(payload.as_ref()).map_err(ApiError::internal)?
    else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "claim stored no TaskClaimed"
        )));
    };
    Answer::json(
        StatusCode::OK,
        &ClaimedTask {
            id: view.id,
            version,
            position,
            queue: view.queue,
            title: view.title,
            description: view.description,
            priority: view.priority,
            payload: view.payload,
            attempt,
            max_attempts: view.max_attempts,
            lease_expires_at,
        },
    )
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Heartbeat, example = json!({"progress": 40, "note": "resized 2 of 5"}))]
struct HeartbeatRequest {
    /// Percent done (0-100).
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "crate::http::whole::optional")]
    progress: Option<i64>,
    #[schema(schema_with = crate::http::openapi::values::optional_note)]
    note: Option<String>,
}

/// Extend the lease of a claimed task (its worker), optionally with progress. The body may
/// be left out.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/heartbeat", operation_id = "heartbeatTask", tag = "tasks",
    params(TaskId, IdempotencyKey, IfMatch),
    request_body = Option<HeartbeatRequest>,
    responses((status = 200, description = "Recorded", body = Committed), Command, RawJsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn heartbeat(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let request: HeartbeatRequest = optional_json(&body)?;
    let progress = request
        .progress
        .map(|p| bounded_int("progress", p, 0, 100).map(|p| p as u8))
        .transpose()?;
    let note = request.note.as_deref().map(Note::parse).transpose()?;
    let note = match note {
        Some(note) => {
            let sealer = state.sealer(actor.user_id).await?;
            Some(Note::sealed(sealer.seal(
                *id,
                field::NOTE,
                note.as_str(),
            )?))
        }
        None => None,
    };
    let command = TaskCommand::Heartbeat {
        actor: actor.clone(),
        progress,
        note,
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &request, command).await
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompleteTask, example = json!({"result": {"url": "https://cdn.example.com/42.png"}}))]
struct CompleteRequest {
    /// Anything the creator should get back, as JSON (at most 64 KiB serialized; no string or
    /// key in it may hold U+0000, which the store cannot hold: 422 naming `result`).
    result: Option<serde_json::Value>,
}

/// Complete a claimed task (its worker). The body may be left out.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/complete", operation_id = "completeTask", tag = "tasks",
    params(TaskId, IdempotencyKey, IfMatch),
    request_body = Option<CompleteRequest>,
    responses((status = 200, description = "Completed", body = Committed), Command, RawJsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn complete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let request: CompleteRequest = optional_json(&body)?;
    let result = request
        .result
        .clone()
        .map(|r| JsonDoc::parse("result", r))
        .transpose()?;
    let command = TaskCommand::Complete {
        actor: actor.clone(),
        result,
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &request, command).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = FailTask, example = json!({"error": "the image is corrupt", "retryable": false}))]
struct FailRequest {
    #[schema(schema_with = crate::http::openapi::values::error_text)]
    error: String,
    /// Whether another attempt may succeed (default true); the task is dead-lettered when
    /// not, or when its attempts are used up.
    retryable: Option<bool>,
}

/// Report that a claimed task failed (its worker).
#[utoipa::path(
    post, path = "/v1/tasks/{id}/fail", operation_id = "failTask", tag = "tasks",
    params(TaskId, IdempotencyKey, IfMatch),
    request_body = FailRequest,
    responses((status = 200, description = "Recorded", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn fail(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<FailRequest>,
) -> ApiResult<HttpResponse> {
    let error =
        Note::parse(&body.error).map_err(|e| ApiError::invalid_field("error", e.message))?;
    let sealer = state.sealer(actor.user_id).await?;
    let error = Note::sealed(sealer.seal(*id, field::ERROR, error.as_str())?);
    let command = TaskCommand::Fail {
        actor: actor.clone(),
        error,
        retryable: body.retryable.unwrap_or(true),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &body.into_inner(), command).await
}

/// Cancel a task that is not finished (its creator). Takes no body.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/cancel", operation_id = "cancelTask", tag = "tasks",
    params(TaskId, IdempotencyKey, IfMatch),
    responses((status = 200, description = "Cancelled", body = Committed), Command, Forbidden,
        NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let command = TaskCommand::Cancel {
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &serde_json::Value::Null, command).await
}

async fn run(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    id: Uuid,
    request: &impl Serialize,
    command: TaskCommand,
) -> ApiResult<HttpResponse> {
    execute_expecting(state, req, actor, request, |ctx| async move {
        let committed = state.commands.task(id, command, &ctx).await?;
        Answer::committed(&committed)
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Tasks of this queue.
    #[param(schema_with = crate::http::openapi::values::optional_queue)]
    queue: Option<String>,
    /// `queued`, `claimed`, `completed`, `dead_lettered` or `cancelled`.
    #[param(schema_with = crate::http::openapi::values::optional_task_status)]
    status: Option<String>,
    /// Tasks this user created.
    creator: Option<Uuid>,
    /// Tasks this user holds or held.
    worker: Option<Uuid>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
}

/// Tasks, newest first: all of them for admins and auditors, else those the caller created
/// or holds.
#[utoipa::path(
    get, path = "/v1/tasks", operation_id = "listTasks", tag = "tasks",
    params(ListQuery, MinPosition, IfNoneMatch),
    responses((status = 200, description = "A page of tasks", body = Page<TaskView>),
        NotModified, Read, Invalid),
    security(("bearer" = [])),
)]
async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    q: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    if let Some(status) = &q.status {
        if bountyline_domain::task::TaskStatus::parse(status).is_none() {
            return Err(ApiError::invalid_field(
                "status",
                "must be one of queued, claimed, completed, dead_lettered, cancelled",
            ));
        }
    }
    if let Some(queue) = &q.queue {
        QueueName::parse(queue)?;
    }
    let limit = paging::limit(q.limit)?;
    let filter = TaskFilter {
        queue: q.queue,
        status: q.status,
        creator: q.creator,
        worker: q.worker,
        visible_to: (!actor.oversees()).then_some(actor.user_id),
        after: q
            .cursor
            .as_deref()
            .map(paging::decode_time_cursor)
            .transpose()?,
        limit: limit + 1,
    };
    state.caught_up(PROJECTION, &req).await?;
    let tag = ETag::of_projection(&state.pool, PROJECTION, &req, &actor).await?;
    if let Some(unchanged) = tag.unchanged(&req) {
        return Ok(unchanged);
    }
    let rows = query::list(&state.pool, &filter).await?;
    let page = paging::page(rows, limit, |t| {
        paging::encode_time_cursor(t.created_at, t.id)
    });
    Ok(tag.ok().json(opened(&state, &page, Scope::Tasks).await?))
}

/// One task, if the caller created it, holds it, or oversees.
#[utoipa::path(
    get, path = "/v1/tasks/{id}", operation_id = "getTask", tag = "tasks",
    params(TaskId, MinPosition, IfNoneMatch),
    responses((status = 200, description = "The task", body = TaskView), NotModified, Read,
        NotFound),
    security(("bearer" = [])),
)]
async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    lookups: web::Data<Batched<TaskView>>,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, &req).await?;
    let task = match lookups.get(*id).await {
        Ok(task) => task,
        // Its batch failed: read alone, to answer with this read's own outcome.
        Err(BatchFailed) => query::get(&state.pool, *id).await?,
    };
    let task = task
        .filter(|t| {
            actor.oversees() || t.creator == actor.user_id || t.worker == Some(actor.user_id)
        })
        .ok_or_else(|| ApiError::NotFound("no such task".into()))?;
    answer_opened(
        &state,
        &req,
        &ETag::version(task.version),
        &task,
        Scope::Tasks,
    )
    .await
}

/// Per queue: depth by status, the oldest waiting task's age, completions per minute.
#[utoipa::path(
    get, path = "/v1/queues", operation_id = "queueStats", tag = "tasks",
    params(MinPosition, IfNoneMatch),
    responses((status = 200, description = "Every queue's numbers", body = Items<QueueStats>),
        NotModified, Read),
    security(("bearer" = [])),
)]
async fn queues(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(_actor): Authenticated,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, &req).await?;
    let items = query::queue_stats(&state.pool, Utc::now()).await?;
    // Ages move with the clock, not with the read model: tagged by content.
    ETag::answer_by_content(&req, &Items { items })
}
