//! Wallets (API.md "Payments"): my balances and ledger, withdrawals, and admin credits.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::money::{Currency, Money};
use bountyline_domain::values::Reason;
use bountyline_domain::wallet::WalletCommand;
use bountyline_domain::Role;
use bountyline_projections::wallets::query;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{require_role, Authenticated};
use crate::http::command::{execute, Answer};
use crate::http::error::{ApiError, ApiResult};
use crate::http::paging;
use crate::state::AppState;

const PROJECTION: &str = "wallets";

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/wallets/me", web::get().to(balances))
        .route("/v1/wallets/me/entries", web::get().to(entries))
        .route("/v1/wallets/me/withdrawals", web::post().to(withdraw))
        .route("/v1/admin/wallets/{user_id}/credit", web::post().to(credit));
}

async fn balances(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    state.caught_up(PROJECTION, &req).await?;
    let balances = query::balances(&state.pool, actor.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "balances": balances })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

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
    let rows = query::entries(&state.pool, actor.user_id, before, limit + 1).await?;
    let page = paging::page(rows, limit, |e| e.position.to_string());
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MoneyRequest {
    amount: i64,
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

#[derive(Debug, Serialize)]
struct WithdrawalAnswer {
    id: String,
    version: i64,
    position: i64,
    withdrawal_id: Uuid,
}

/// Reserves the amount at once; the provider's webhook later completes or fails it.
async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<MoneyRequest>,
) -> ApiResult<HttpResponse> {
    let money = body.money()?;
    let withdrawal_id = Uuid::now_v7();
    let command = WalletCommand::RequestWithdrawal {
        owner: actor.user_id,
        withdrawal_id,
        money,
        actor: actor.clone(),
        at: Utc::now(),
    };
    let bus = state.commands.clone();
    let owner = actor.user_id;
    execute(&state, &req, &actor, &*body, |ctx| async move {
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

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CreditRequest {
    amount: i64,
    currency: String,
    reason: String,
}

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
    let command = WalletCommand::Credit {
        owner,
        money: Money::positive(body.amount, Currency::parse(&body.currency)?)?,
        reason: Reason::parse(&body.reason)?,
        actor: actor.clone(),
        at: Utc::now(),
    };
    let bus = state.commands.clone();
    execute(&state, &req, &actor, &*body, |ctx| async move {
        let c = bus.wallet(owner, command, &ctx).await?;
        Answer::json(StatusCode::OK, &c)
    })
    .await
}
