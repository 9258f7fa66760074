//! The shared shape of a command handler: Idempotency-Key handling around the command, and
//! the translation of command refusals into problem+json.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bountyline_domain::Actor;
use serde::Serialize;
use std::future::Future;

use super::error::{problem_body, ApiError, ApiResult};
use super::extract::{client_request_id, idempotency_key, if_match, request_id};
use super::idempotency::{self, Begin};
use super::limits::too_many;
use crate::commands::{CommandContext, Committed};
use crate::privacy::Scope;
use crate::state::AppState;

/// A command's answer before it is sent: status and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn json(status: StatusCode, body: &impl Serialize) -> ApiResult<Self> {
        let body = serde_json::to_value(body).map_err(ApiError::internal)?;
        Ok(Self { status, body })
    }

    /// `{id, version, position}`: 201 when the command created the aggregate, else 200.
    pub fn committed(c: &Committed) -> ApiResult<Self> {
        let status = if c.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Self::json(status, c)
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: serde_json::Value::Null,
        }
    }

    /// The response, its texts opened (a claim answers its task's title): the answer itself
    /// stays sealed where it is recorded for retries.
    async fn respond(mut self, state: &AppState) -> ApiResult<HttpResponse> {
        if self.status == StatusCode::NO_CONTENT {
            return Ok(HttpResponse::NoContent().finish());
        }
        state.privacy.open(&mut self.body, Scope::Tasks).await?;
        Ok(HttpResponse::build(self.status).json(self.body))
    }
}

/// Runs `run` at most once per Idempotency-Key (when the request has one). `request` is the
/// request's body as the client meant it; a retry with a different one is refused.
///
/// For a command that creates its aggregate or picks one (a claim): `If-Match` is not read.
pub async fn execute<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    request: &impl Serialize,
    run: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(CommandContext) -> Fut,
    Fut: Future<Output = ApiResult<Answer>>,
{
    command(state, req, actor, request, false, run).await
}

/// [`execute`] for a command on an aggregate the request names: `If-Match` (read into
/// [`CommandContext::expected`]) has the command decided only on the version it names.
///
/// A retry under an Idempotency-Key is answered from the first try's record before anything
/// runs, so it gets the first answer even after the aggregate moved on; the key covers the
/// body, not the header.
pub async fn execute_expecting<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    request: &impl Serialize,
    run: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(CommandContext) -> Fut,
    Fut: Future<Output = ApiResult<Answer>>,
{
    command(state, req, actor, request, true, run).await
}

async fn command<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    request: &impl Serialize,
    expecting: bool,
    run: F,
) -> ApiResult<HttpResponse>
where
    F: FnOnce(CommandContext) -> Fut,
    Fut: Future<Output = ApiResult<Answer>>,
{
    state
        .limits
        .commands
        .take(&actor.user_id)
        .map_err(too_many)?;
    let key = idempotency_key(req)?;
    let expected = if expecting { if_match(req)? } else { None };
    let mut ctx = CommandContext::http(actor.clone(), &request_id(req), key.clone());
    ctx.client_request_id = client_request_id(req);
    ctx.expected = expected;
    let Some(key) = key else {
        return run(ctx).await?.respond(state).await;
    };
    let body = serde_json::to_value(request).map_err(ApiError::internal)?;
    let hash = idempotency::request_hash(req.method().as_str(), req.path(), &body);
    let user = actor.user_id;
    match idempotency::begin(&state.pool, user, &key, &hash).await? {
        Begin::Replay { status, mut body } => {
            state.privacy.open(&mut body, Scope::Tasks).await?;
            return Ok(idempotency::replay(status, &body));
        }
        Begin::Resolve => ctx.resolve = true,
        Begin::Fresh => {}
    }
    match run(ctx).await {
        Ok(answer) => {
            // The command is done; a failure to record its answer must not hide that. The
            // claim then stays open, and a retry resolves it from the store.
            if let Err(e) =
                idempotency::finish(&state.pool, user, &key, answer.status, &answer.body).await
            {
                tracing::warn!(error = %e, "an idempotent answer was not recorded");
            }
            answer.respond(state).await
        }
        // Maybe stored, maybe not: never forgotten, resolved from the store by the next try.
        Err(e) if e.is_transient() => {
            if let Err(mark) = idempotency::unresolved(&state.pool, user, &key).await {
                tracing::warn!(error = %mark, "an unresolved idempotency key was not marked");
            }
            Err(e)
        }
        Err(e) => {
            idempotency::finish(&state.pool, user, &key, e_status(&e), &problem_body(&e)).await?;
            Err(e)
        }
    }
}

fn e_status(e: &ApiError) -> StatusCode {
    actix_web::ResponseError::status_code(e)
}
