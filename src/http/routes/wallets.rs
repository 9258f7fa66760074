//! Wallets (API.md "Payments"): my balances and ledger, withdrawals, and admin credits.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::money::{Currency, Money};
use bountyline_domain::values::Reason;
use bountyline_domain::wallet::WalletCommand;
use bountyline_domain::Role;
use bountyline_projections::wallets::query::{self, Balance, Entry};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{require_role, Authenticated};
use crate::commands::Committed;
use crate::http::command::{execute_expecting, Answer};
use crate::http::conditional::ETag;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::params::{IdempotencyKey, IfMatch, IfNoneMatch, MinPosition};
use crate::http::openapi::problems::{
    Command, Expecting, Forbidden, Invalid, JsonBody, NotFound, NotModified, Read,
};
use crate::http::paging::{self, Page};
use crate::state::AppState;

const PROJECTION: &str = "wallets";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/wallets/me", web::get().to(balances))
        .route("/v1/wallets/me/entries", web::get().to(entries))
        .route("/v1/wallets/me/withdrawals", web::post().to(withdraw))
        .route("/v1/admin/wallets/{user_id}/credit", web::post().to(credit));
}

#[derive(Serialize, ToSchema)]
struct Balances {
    /// One per currency the caller has held.
    balances: Vec<Balance>,
}

/// The caller's balances: available and held, per currency.
#[utoipa::path(
    get, path = "/v1/wallets/me", operation_id = "myBalances", tag = "wallets",
    params(MinPosition, IfNoneMatch),
    responses((status = 200, description = "The balances", body = Balances), NotModified,
        Read),
    security(("bearer" = [])),
)]
async fn balances(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, &req).await?;
    let balances = query::balances(&state.pool, actor.user_id).await?;
    ETag::answer_by_content(&req, &Balances { balances })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EntriesQuery {
    /// Page size (default 50, at most 200).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "paging::non_empty")]
    cursor: Option<String>,
}

/// The caller's ledger, newest first; each entry carries the balances after it.
#[utoipa::path(
    get, path = "/v1/wallets/me/entries", operation_id = "myLedger", tag = "wallets",
    params(EntriesQuery, MinPosition, IfNoneMatch),
    responses((status = 200, description = "A page of entries", body = Page<Entry>),
        NotModified, Read, Invalid),
    security(("bearer" = [])),
)]
async fn entries(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    q: web::Query<EntriesQuery>,
) -> ApiResult<HttpResponse> {
    let limit = paging::limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid_field("cursor", "is not a cursor this API issued"))
        })
        .transpose()?;
    state.caught_up(PROJECTION, &req).await?;
    let tag = ETag::of_projection(&state.pool, PROJECTION, &req, &actor).await?;
    if let Some(unchanged) = tag.unchanged(&req) {
        return Ok(unchanged);
    }
    let rows = query::entries(&state.pool, actor.user_id, before, limit + 1).await?;
    let page = paging::page(rows, limit, |e| e.position.to_string());
    Ok(tag.ok().json(page))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Withdraw, example = json!({"amount": 5000, "currency": "USD"}))]
struct MoneyRequest {
    /// In minor units.
    #[schema(minimum = 1, maximum = 1e12)]
    #[serde(deserialize_with = "crate::http::whole::number")]
    amount: i64,
    #[schema(schema_with = crate::http::openapi::values::currency)]
    currency: String,
}

impl MoneyRequest {
    fn money(&self) -> ApiResult<Money> {
        Ok(Money::positive(
            self.amount,
            Currency::parse(&self.currency)?,
        )?)
    }
}

/// `{id, version, position}` of the wallet, and the new withdrawal's id.
#[derive(Debug, Serialize, ToSchema)]
struct WithdrawalAnswer {
    id: String,
    version: i64,
    position: i64,
    withdrawal_id: Uuid,
}

/// Withdraw from the caller's wallet: the amount is reserved at once, and the payment
/// provider's webhook later completes or fails the withdrawal. `If-Match` names the wallet's
/// version, as a wallet command answered it (`GET /v1/wallets/me` is tagged by its content,
/// not by a version: its read model keeps none).
#[utoipa::path(
    post, path = "/v1/wallets/me/withdrawals", operation_id = "withdraw", tag = "wallets",
    params(IdempotencyKey, IfMatch),
    request_body = MoneyRequest,
    responses((status = 201, description = "Requested", body = WithdrawalAnswer), Command,
        JsonBody, Expecting),
    security(("bearer" = [])),
)]
async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<MoneyRequest>,
) -> ApiResult<HttpResponse> {
    let money = body.money()?;
    let bus = state.commands.clone();
    let (owner, requester) = (actor.user_id, actor.clone());
    execute_expecting(&state, &req, &actor, &*body, |ctx| async move {
        let withdrawal_id = ctx.mint("withdrawal");
        let command = WalletCommand::RequestWithdrawal {
            owner,
            withdrawal_id,
            money,
            actor: requester,
            at: Utc::now(),
        };
        let c = bus.wallet(owner, command, &ctx).await?;
        Answer::json(
            StatusCode::CREATED,
            &WithdrawalAnswer {
                id: c.id,
                version: c.version,
                position: c.position,
                withdrawal_id,
            },
        )
    })
    .await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Credit, example = json!({"amount": 2500, "currency": "USD",
    "reason": "goodwill credit for ticket 1234"}))]
struct CreditRequest {
    /// In minor units.
    #[schema(minimum = 1, maximum = 1e12)]
    #[serde(deserialize_with = "crate::http::whole::number")]
    amount: i64,
    #[schema(schema_with = crate::http::openapi::values::currency)]
    currency: String,
    #[schema(schema_with = crate::http::openapi::values::reason)]
    reason: String,
}

/// Credit a user's wallet (admin), with a reason.
#[utoipa::path(
    post, path = "/v1/admin/wallets/{user_id}/credit", operation_id = "creditWallet",
    tag = "wallets",
    params(("user_id" = Uuid, Path, description = "The user whose wallet to credit"),
        IdempotencyKey, IfMatch),
    request_body = CreditRequest,
    responses((status = 200, description = "Credited", body = Committed), Command, JsonBody,
        Forbidden, NotFound, Expecting),
    security(("bearer" = [])),
)]
async fn credit(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    user: web::Path<Uuid>,
    body: web::Json<CreditRequest>,
) -> ApiResult<HttpResponse> {
    require_role(&actor, Role::Admin)?;
    let owner = *user;
    let known: Option<bool> = sqlx::query_scalar("SELECT true FROM users WHERE id = $1")
        .bind(owner)
        .fetch_optional(&state.pool)
        .await?;
    if known.is_none() {
        return Err(ApiError::NotFound("no such user".into()));
    }
    let money = Money::positive(body.amount, Currency::parse(&body.currency)?)?;
    let reason = Reason::parse(&body.reason)?;
    let (bus, admin) = (state.commands.clone(), actor.clone());
    execute_expecting(&state, &req, &actor, &*body, |ctx| async move {
        let command = WalletCommand::Credit {
            owner,
            credit_id: ctx.mint("credit"),
            money,
            reason,
            actor: admin,
            at: Utc::now(),
        };
        let c = bus.wallet(owner, command, &ctx).await?;
        Answer::json(StatusCode::OK, &c)
    })
    .await
}
