//! Bounty commands and queries (API.md "Bounties"): post, apply and withdraw, accept, submit,
//! approve, reject, cancel, dispute, an admin's resolution; the board and one bounty's detail.
//!
//! Bodies: `submit` takes `{"deliverable": {"text"?, "link"?}}` or, for a text alone,
//! `{"deliverable": "..."}`. `approve` and `cancel` take no body; an empty body, `null` or `{}`
//! are all accepted, anything else is refused like any unknown field.

use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bountyline_domain::bounty::{
    BountyCommand, BountyStatus, Deliverable, DisputeOutcome, PostBounty, Tag, Tags,
};
use bountyline_domain::money::{Currency, Money};
use bountyline_domain::values::{Description, Pitch, Reason, Title};
use bountyline_domain::{Actor, Role};
use bountyline_projections::bounties::{
    query, ApplicationView, BoardFilter, BoardSort, BountyView, SortKey, Work,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{require_role, Authenticated};
use crate::commands::Committed;
use crate::http::command::{execute, execute_expecting, Answer};
use crate::http::conditional::ETag;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::optional_json;
use crate::http::openapi::params::{BountyId, IdempotencyKey, IfMatch, IfNoneMatch, MinPosition};
use crate::http::openapi::problems::{
    Command, Expecting, Forbidden, Invalid, JsonBody, NotFound, NotModified, RawJsonBody, Read,
};
use crate::http::paging::{self, Page};
use crate::http::sealing::{answer_opened, opened};
use crate::privacy::{field, Scope};
use crate::state::AppState;

const PROJECTION: &str = "bounties";

/// The namespace of bounties' escrow payment ids. Never change it: the process managers find
/// a bounty's payment by the id derived from it.
const PAYMENT_NAMESPACE: Uuid = Uuid::from_u128(0x6f0e_3c1a_9b7d_4e52_8a41_2d5c_7b90_e1f3);

/// The escrow payment of `bounty_id`: a name-based UUID (version 8, from SHA-256 of the
/// namespace and the bounty id), so the same bounty always names the same payment.
pub fn payment_id_for(bounty_id: Uuid) -> Uuid {
    let digest = Sha256::new()
        .chain_update(PAYMENT_NAMESPACE.as_bytes())
        .chain_update(bounty_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/bounties", web::post().to(post))
        .route("/v1/bounties", web::get().to(board))
        .route("/v1/bounties/{id}", web::get().to(detail))
        .route("/v1/bounties/{id}/applications", web::post().to(apply))
        .route(
            "/v1/bounties/{id}/applications/{application_id}",
            web::delete().to(withdraw),
        )
        .route("/v1/bounties/{id}/accept", web::post().to(accept))
        .route("/v1/bounties/{id}/submit", web::post().to(submit))
        .route("/v1/bounties/{id}/approve", web::post().to(approve))
        .route("/v1/bounties/{id}/reject", web::post().to(reject))
        .route("/v1/bounties/{id}/cancel", web::post().to(cancel))
        .route("/v1/bounties/{id}/dispute", web::post().to(dispute))
        .route("/v1/admin/bounties/{id}/resolve", web::post().to(resolve));
}

/// Money: an integer amount in minor units and an ISO 4217 currency.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Money)]
struct RewardRequest {
    #[schema(minimum = 1, maximum = 1e12, example = 1250)]
    #[serde(deserialize_with = "crate::http::whole::number")]
    amount: i64,
    #[schema(schema_with = crate::http::openapi::values::currency)]
    currency: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PostBounty, example = json!({"title": "Fix the flaky login test",
    "description": "It fails one run in ten on CI.", "reward": {"amount": 1250, "currency": "USD"},
    "deadline": "2030-01-31T23:59:59Z", "tags": ["rust", "testing"]}))]
struct PostRequest {
    #[schema(schema_with = crate::http::openapi::values::title)]
    title: String,
    #[schema(schema_with = crate::http::openapi::values::description)]
    description: String,
    reward: RewardRequest,
    /// When the bounty expires if it is still open; its escrow is then refunded.
    deadline: Option<DateTime<Utc>>,
    #[schema(schema_with = crate::http::openapi::values::optional_tags)]
    tags: Option<Vec<String>>,
}

impl PostRequest {
    fn into_command(self, poster: Actor, bounty_id: Uuid) -> ApiResult<PostBounty> {
        Ok(PostBounty {
            bounty_id,
            payment_id: payment_id_for(bounty_id),
            poster,
            title: Title::parse(&self.title)?,
            description: Description::parse(&self.description)?,
            reward: Money::positive(self.reward.amount, Currency::parse(&self.reward.currency)?)?,
            deadline: self.deadline,
            tags: Tags::parse(self.tags.unwrap_or_default())?,
            at: Utc::now(),
        })
    }
}

/// Post a bounty; its reward is then held in escrow from the poster's wallet.
#[utoipa::path(
    post, path = "/v1/bounties", operation_id = "postBounty", tag = "bounties",
    params(IdempotencyKey),
    request_body = PostRequest,
    responses((status = 201, description = "Posted", body = Committed), Command, JsonBody),
    security(("bearer" = [])),
)]
async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<PostRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let (bus, request, poster) = (state.commands.clone(), body.clone(), actor.clone());
    let st = state.clone();
    execute(&state, &req, &actor, &body, |ctx| async move {
        let mut post = request.into_command(poster, ctx.mint("bounty"))?;
        let id = post.bounty_id;
        let sealer = st.sealer(post.poster.user_id).await?;
        post.title = Title::sealed(sealer.seal(id, field::TITLE, post.title.as_str())?);
        post.description =
            Description::sealed(sealer.seal(id, field::DESCRIPTION, post.description.as_str())?);
        let committed = bus.bounty(id, BountyCommand::Post(post), &ctx).await?;
        Answer::committed(&committed)
    })
    .await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Apply, example = json!({"pitch": "I fixed the same race in our codebase last year."}))]
struct ApplyRequest {
    #[schema(schema_with = crate::http::openapi::values::pitch)]
    pitch: String,
}

/// `{id, version, position}` of the bounty, and the new application's id.
#[derive(Debug, Serialize, ToSchema)]
struct ApplicationAnswer {
    id: String,
    version: i64,
    position: i64,
    application_id: Uuid,
}

/// Apply to hunt an open bounty.
#[utoipa::path(
    post, path = "/v1/bounties/{id}/applications", operation_id = "applyToBounty",
    tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = ApplyRequest,
    responses((status = 201, description = "Applied", body = ApplicationAnswer), Command,
        JsonBody, Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn apply(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<ApplyRequest>,
) -> ApiResult<HttpResponse> {
    let (pitch, hunter) = (Pitch::parse(&body.pitch)?, actor.clone());
    let (bus, id) = (state.commands.clone(), *id);
    let st = state.clone();
    execute_expecting(&state, &req, &actor, &*body, |ctx| async move {
        let sealer = st.sealer(hunter.user_id).await?;
        let pitch = Pitch::sealed(sealer.seal(id, field::PITCH, pitch.as_str())?);
        let application_id = ctx.mint("application");
        let command = BountyCommand::Apply {
            application_id,
            hunter,
            pitch,
            at: Utc::now(),
        };
        let c = bus.bounty(id, command, &ctx).await?;
        let answer = ApplicationAnswer {
            id: c.id,
            version: c.version,
            position: c.position,
            application_id,
        };
        Answer::json(StatusCode::CREATED, &answer)
    })
    .await
}

/// Withdraw one's own pending application. Takes no body.
#[utoipa::path(
    delete, path = "/v1/bounties/{id}/applications/{application_id}",
    operation_id = "withdrawApplication", tag = "bounties",
    params(
        BountyId,
        ("application_id" = Uuid, Path, description = "The application's id"),
        IdempotencyKey,
        IfMatch,
    ),
    responses((status = 200, description = "Withdrawn", body = Committed), Command, Forbidden,
        NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (id, application_id) = path.into_inner();
    let command = BountyCommand::WithdrawApplication {
        application_id,
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, id, &serde_json::Value::Null, command).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AcceptApplication, example = json!({"application_id": "0192f3a4-5b6c-7d8e-9f01-23456789abcd"}))]
struct AcceptRequest {
    application_id: Uuid,
}

/// Accept an application (the poster): its hunter is assigned.
#[utoipa::path(
    post, path = "/v1/bounties/{id}/accept", operation_id = "acceptApplication",
    tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = AcceptRequest,
    responses((status = 200, description = "Assigned", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn accept(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<AcceptRequest>,
) -> ApiResult<HttpResponse> {
    let command = BountyCommand::Accept {
        application_id: body.application_id,
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &*body, command).await
}

/// A deliverable as sent: its parts, or just a text.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = Deliverable)]
enum DeliverableRequest {
    Text(String),
    Parts(DeliverableParts),
}

/// A text, a link, or both.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeliverableParts {
    #[schema(schema_with = crate::http::openapi::values::optional_deliverable_text)]
    text: Option<String>,
    link: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Submit, example = json!({"deliverable": {"text": "Fixed: the session store raced.",
    "link": "https://git.example.com/pr/42"}}))]
struct SubmitRequest {
    #[schema(schema_with = crate::http::openapi::values::deliverable)]
    deliverable: DeliverableRequest,
}

/// Submit work (the assigned hunter).
#[utoipa::path(
    post, path = "/v1/bounties/{id}/submit", operation_id = "submitWork", tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = SubmitRequest,
    responses((status = 200, description = "Submitted", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<SubmitRequest>,
) -> ApiResult<HttpResponse> {
    let deliverable = match &body.deliverable {
        DeliverableRequest::Text(text) => Deliverable::parse(Some(text), None)?,
        DeliverableRequest::Parts(parts) => {
            Deliverable::parse(parts.text.as_deref(), parts.link.as_deref())?
        }
    };
    let sealer = state.sealer(actor.user_id).await?;
    let deliverable = Deliverable::sealed(
        deliverable
            .text()
            .map(|text| sealer.seal(*id, field::TEXT, text))
            .transpose()?,
        deliverable
            .link()
            .map(|link| sealer.seal(*id, field::LINK, link))
            .transpose()?,
    )?;
    let command = BountyCommand::Submit {
        deliverable,
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &*body, command).await
}

/// The body of a command that takes none.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
struct NoBody {}

/// Approve the submitted work (the poster): the reward is paid out to the hunter. The body
/// may be left out.
#[utoipa::path(
    post, path = "/v1/bounties/{id}/approve", operation_id = "approveWork", tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = Option<NoBody>,
    responses((status = 200, description = "Approved", body = Committed), Command, RawJsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let request: NoBody = optional_json(&body)?;
    let command = BountyCommand::Approve {
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &request, command).await
}

/// Cancel a bounty before work is submitted (the poster): the escrow is refunded. The body
/// may be left out.
#[utoipa::path(
    post, path = "/v1/bounties/{id}/cancel", operation_id = "cancelBounty", tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = Option<NoBody>,
    responses((status = 200, description = "Cancelled", body = Committed), Command, RawJsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn cancel(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let request: NoBody = optional_json(&body)?;
    let command = BountyCommand::Cancel {
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &request, command).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Reason, example = json!({"reason": "The fix does not cover the logout path."}))]
struct ReasonRequest {
    #[schema(schema_with = crate::http::openapi::values::reason)]
    reason: String,
}

/// Reject the submitted work (the poster), with a reason; the hunter may submit again.
#[utoipa::path(
    post, path = "/v1/bounties/{id}/reject", operation_id = "rejectWork", tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = ReasonRequest,
    responses((status = 200, description = "Rejected", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn reject(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<ReasonRequest>,
) -> ApiResult<HttpResponse> {
    let reason = Reason::parse(&body.reason)?;
    let sealer = state.sealer(actor.user_id).await?;
    let command = BountyCommand::Reject {
        reason: Reason::sealed(sealer.seal(*id, field::REASON, reason.as_str())?),
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &*body, command).await
}

/// Dispute the bounty (the poster or the hunter), with a reason; an admin resolves it.
#[utoipa::path(
    post, path = "/v1/bounties/{id}/dispute", operation_id = "disputeBounty", tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = ReasonRequest,
    responses((status = 200, description = "Disputed", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn dispute(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<ReasonRequest>,
) -> ApiResult<HttpResponse> {
    let reason = Reason::parse(&body.reason)?;
    let sealer = state.sealer(actor.user_id).await?;
    let command = BountyCommand::Dispute {
        reason: Reason::sealed(sealer.seal(*id, field::REASON, reason.as_str())?),
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &*body, command).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Resolve, example = json!({"outcome": "pay_hunter"}))]
struct ResolveRequest {
    /// `pay_hunter` or `refund_poster`.
    #[schema(schema_with = crate::http::openapi::values::dispute_outcome)]
    outcome: DisputeOutcome,
}

/// Resolve a dispute (admin): pay the hunter or refund the poster.
#[utoipa::path(
    post, path = "/v1/admin/bounties/{id}/resolve", operation_id = "resolveDispute",
    tag = "bounties",
    params(BountyId, IdempotencyKey, IfMatch),
    request_body = ResolveRequest,
    responses((status = 200, description = "Resolved", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn resolve(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<ResolveRequest>,
) -> ApiResult<HttpResponse> {
    require_role(&actor, Role::Admin)?;
    let command = BountyCommand::Resolve {
        outcome: body.outcome,
        actor: actor.clone(),
        at: Utc::now(),
    };
    run(&state, &req, &actor, *id, &*body, command).await
}

async fn run(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    id: Uuid,
    request: &impl Serialize,
    command: BountyCommand,
) -> ApiResult<HttpResponse> {
    execute_expecting(state, req, actor, request, |ctx| async move {
        let committed = state.commands.bounty(id, command, &ctx).await?;
        Answer::committed(&committed)
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct BoardQuery {
    /// A bounty status, e.g. `open`, `assigned`, `submitted`.
    #[param(schema_with = crate::http::openapi::values::optional_bounty_status)]
    status: Option<String>,
    /// Bounties with this tag.
    #[param(schema_with = crate::http::openapi::values::optional_tag)]
    tag: Option<String>,
    /// Text search over titles and descriptions (at most 200 characters).
    #[param(max_length = 200)]
    q: Option<String>,
    /// `reward`, `-reward`, `created` or `-created` (newest first, the default).
    #[param(schema_with = crate::http::openapi::values::optional_board_sort)]
    sort: Option<String>,
    /// A user id, or `me`.
    #[param(schema_with = crate::http::openapi::values::optional_user_ref)]
    poster: Option<String>,
    /// A user id, or `me`.
    #[param(schema_with = crate::http::openapi::values::optional_user_ref)]
    hunter: Option<String>,
    /// Page size (default 50, at most 200).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page in the same order.
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
}

/// The longest text search accepted, in characters.
const MAX_QUERY_CHARS: usize = 200;

impl BoardQuery {
    fn into_filter(self, me: Uuid, limit: i64) -> ApiResult<BoardFilter> {
        if let Some(status) = &self.status {
            if BountyStatus::parse(status).is_none() {
                let all: Vec<&str> = BountyStatus::ALL.iter().map(|s| s.as_str()).collect();
                let message = format!("must be one of {}", all.join(", "));
                return Err(ApiError::invalid_field("status", message));
            }
        }
        let tag = self
            .tag
            .as_deref()
            .map(|t| Tag::parse(t).map_err(|e| ApiError::invalid_field("tag", e.message)))
            .transpose()?;
        let text = self
            .q
            // A search is words: control characters (U+0000 among them, which Postgres cannot
            // take) separate words as spaces do, so they are read as spaces.
            .map(|q| q.replace(char::is_control, " ").trim().to_owned())
            .filter(|q| !q.is_empty());
        if text
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
        {
            let message = format!("must be at most {MAX_QUERY_CHARS} characters");
            return Err(ApiError::invalid_field("q", message));
        }
        let sort = match self.sort.as_deref() {
            None => BoardSort::default(),
            Some(s) => BoardSort::parse(s).ok_or_else(|| {
                ApiError::invalid_field("sort", "must be one of reward, -reward, created, -created")
            })?,
        };
        Ok(BoardFilter {
            status: self.status,
            tag: tag.map(|t| t.as_str().to_owned()),
            text,
            poster: self
                .poster
                .as_deref()
                .map(|p| user("poster", p, me))
                .transpose()?,
            hunter: self
                .hunter
                .as_deref()
                .map(|h| user("hunter", h, me))
                .transpose()?,
            sort,
            after: self
                .cursor
                .as_deref()
                .map(|c| decode_cursor(c, sort))
                .transpose()?,
            limit: limit + 1,
        })
    }
}

/// A user named in a filter: a user id, or `me` for the caller.
fn user(field: &str, raw: &str, me: Uuid) -> ApiResult<Uuid> {
    if raw == "me" {
        return Ok(me);
    }
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid_field(field, "must be a user id or me"))
}

/// A board cursor names its order, so that one from another order is refused rather than
/// misread: `<sort>|<key>|<id>`, base64url.
fn encode_cursor(sort: BoardSort, bounty: &BountyView) -> String {
    let key = match sort.key_of(bounty) {
        SortKey::Reward(amount) => amount.to_string(),
        SortKey::Created(at) => at.to_rfc3339(),
    };
    URL_SAFE_NO_PAD.encode(format!("{}|{key}|{}", sort.as_str(), bounty.id))
}

fn decode_cursor(cursor: &str, sort: BoardSort) -> ApiResult<(SortKey, Uuid)> {
    let bad = || ApiError::invalid_field("cursor", "is not a cursor this API issued");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let (Some(order), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let order = BoardSort::parse(order).ok_or_else(bad)?;
    if order != sort {
        return Err(ApiError::invalid_field(
            "cursor",
            format!(
                "belongs to the {} order, not {}; start again without a cursor",
                order.as_str(),
                sort.as_str()
            ),
        ));
    }
    let key = match sort {
        BoardSort::RewardAsc | BoardSort::RewardDesc => {
            SortKey::Reward(key.parse().map_err(|_| bad())?)
        }
        BoardSort::CreatedAsc | BoardSort::CreatedDesc => SortKey::Created(
            DateTime::parse_from_rfc3339(key)
                .map_err(|_| bad())?
                .with_timezone(&Utc),
        ),
    };
    Ok((key, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// The board: any member may read it; "my bounties" are `poster=me` and `hunter=me`.
#[utoipa::path(
    get, path = "/v1/bounties", operation_id = "listBounties", tag = "bounties",
    params(BoardQuery, MinPosition, IfNoneMatch),
    responses((status = 200, description = "A page of bounties", body = Page<BountyView>),
        NotModified, Read, Invalid),
    security(("bearer" = [])),
)]
async fn board(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    q: web::Query<BoardQuery>,
) -> ApiResult<HttpResponse> {
    let limit = paging::limit(q.limit)?;
    let filter = q.into_inner().into_filter(actor.user_id, limit)?;
    state.caught_up(PROJECTION, &req).await?;
    // Known before the read, so that the page read is at least this new (see read_cache).
    let position = state.progress.position(PROJECTION);
    // A page kept in memory is tagged by the position it was read at, which costs no query
    // (a board read is the busiest); one read afresh by the checkpoint as stored, read before
    // the rows. Either way an unchanged tag means unchanged rows, within the cache's time to
    // live when the projections' announcements are lost.
    let (tag, kept) = match state.board.get(&filter, position) {
        Some(body) => (ETag::of_read(position, &req, &actor), Some(body)),
        None => (
            ETag::of_projection(&state.pool, PROJECTION, &req, &actor).await?,
            None,
        ),
    };
    if let Some(unchanged) = tag.unchanged(&req) {
        return Ok(unchanged);
    }
    let body = match kept {
        Some(body) => body,
        None => {
            let rows = query::board(&state.pool, &filter, state.privacy.search_key()).await?;
            let page = paging::page(rows, limit, |b| encode_cursor(filter.sort, b));
            let page = opened(&state, &page, Scope::Bounties).await?;
            let body = Bytes::from(serde_json::to_vec(&page).map_err(ApiError::internal)?);
            state.board.put(filter, position, body.clone());
            body
        }
    };
    Ok(tag.ok().content_type(ContentType::json()).body(body))
}

/// A bounty with what the caller may see of its work and applications.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BountyDetail)]
struct Detail {
    #[serde(flatten)]
    bounty: BountyView,
    /// The latest deliverable and the reasons given: for the parties, admins and auditors.
    work: Option<Work>,
    applications: Vec<ApplicationView>,
}

/// One bounty. Applications: all of them for the poster, admins and auditors; an
/// applicant's own for the applicant; none for anyone else.
#[utoipa::path(
    get, path = "/v1/bounties/{id}", operation_id = "getBounty", tag = "bounties",
    params(BountyId, MinPosition, IfNoneMatch),
    responses((status = 200, description = "The bounty", body = Detail), NotModified, Read,
        NotFound),
    security(("bearer" = [])),
)]
async fn detail(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, &req).await?;
    let bounty = query::get(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such bounty".into()))?;
    let me = actor.user_id;
    let sees_all = bounty.poster == me || actor.oversees();
    let mut applications = query::applications(&state.pool, bounty.id).await?;
    if !sees_all {
        applications.retain(|a| a.hunter == me);
    }
    let work = (sees_all || bounty.hunter == Some(me)).then(|| bounty.work.clone());
    // Applications and work are the bounty's own events: its version covers them.
    let tag = ETag::version(bounty.version);
    let detail = Detail {
        bounty,
        work,
        applications,
    };
    answer_opened(&state, &req, &tag, &detail, Scope::Bounties).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounty_always_names_the_same_payment_and_no_other_bounty_does() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(payment_id_for(a), payment_id_for(a));
        assert_ne!(payment_id_for(a), payment_id_for(b));
        assert_ne!(payment_id_for(a), a);
        assert_eq!(payment_id_for(a).get_version_num(), 8);
    }

    #[test]
    fn a_cursor_is_read_back_only_for_its_own_order() {
        let id = Uuid::now_v7();
        let raw = URL_SAFE_NO_PAD.encode(format!("-reward|1500|{id}"));
        assert_eq!(
            decode_cursor(&raw, BoardSort::RewardDesc).ok(),
            Some((SortKey::Reward(1500), id))
        );
        assert!(decode_cursor(&raw, BoardSort::RewardAsc).is_err());
        assert!(decode_cursor(&raw, BoardSort::CreatedDesc).is_err());
        assert!(decode_cursor("not-a-cursor", BoardSort::RewardDesc).is_err());
    }
}
