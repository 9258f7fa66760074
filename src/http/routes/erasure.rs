//! Forgetting a person (ADR 7, docs/PRIVACY.md "Erasing a person"):
//!
//! - `DELETE /v1/me` `{"password": "..."}`: the caller erases themself, confirming with their
//!   password (a wrong one is 403 after the same argon2 work as a sign-in, and counts as a
//!   failed sign-in for the login throttle);
//! - `POST /v1/admin/users/{id}/erase`: an admin erases another account (never their own: they
//!   use `DELETE /v1/me`, as no admin changes their own account through the admin routes).
//!
//! Each appends `PersonErased` to the person's stream through the command bus, then scrubs in
//! one transaction (`privacy::erasure::scrub`: key destroyed, legacy texts recorded as erased,
//! email and name replaced, password unusable, account disabled, sessions revoked), forgets
//! the person's key and sessions in this process, and answers 200 `{person, legacy_texts}`:
//! `legacy_texts` counts the texts the person wrote before texts were sealed, which every
//! answer now shows as `[erased]` but whose bytes stay in the event store (docs/PRIVACY.md). A
//! `VACUUM` of `person_keys` and `users` follows, best effort. Erasing an erased person
//! appends nothing and answers the same again. A crash between the append and the scrub is
//! finished by the process managers.
//!
//! Both take `Idempotency-Key`; neither reads `If-Match`: a person's stream has no version a
//! client was ever shown, and a repeat is harmless anyway.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bountyline_domain::person::PersonCommand;
use bountyline_domain::{Actor, Role};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::sessions::Sessions;
use crate::auth::{password, require_role, users, Authenticated};
use crate::http::command::{execute, Answer};
use crate::http::error::{ApiError, ApiResult};
use crate::http::limits::too_many;
use crate::http::openapi::params::{IdempotencyKey, UserId};
use crate::http::openapi::problems::{Command, Forbidden, JsonBody, NotFound};
use crate::privacy::{erasure, legacy};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/me", web::delete().to(erase_me))
        .route("/v1/admin/users/{id}/erase", web::post().to(erase_user));
}

/// What an erasure answers.
#[derive(Serialize, ToSchema)]
#[schema(as = Erased, example = json!({
    "person": "5f0c2a4e-8d1b-4c7a-9e3f-2b6d8a1c4e7f", "legacy_texts": 0}))]
struct ErasedAnswer {
    /// Who was erased.
    person: Uuid,
    /// How many texts the person wrote before bountyline sealed texts (its first releases).
    /// Every answer shows them as `[erased]` now, but their bytes stay in the event store,
    /// which is append-only (docs/PRIVACY.md, "Texts written before sealing"). 0 for anyone
    /// who joined since.
    #[schema(minimum = 0)]
    legacy_texts: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EraseMe, example = json!({"password": "correct horse battery"}))]
struct EraseMeRequest {
    /// The caller's password, once more.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Erase the caller: their texts read `[erased]` everywhere from now on, their email and name
/// are replaced, and their account can no longer sign in. Ids and amounts stay. Confirmed with
/// the caller's password.
#[utoipa::path(
    delete, path = "/v1/me", operation_id = "eraseMe", tag = "users",
    params(IdempotencyKey),
    request_body = EraseMeRequest,
    responses((status = 200, description = "Erased; every session of the caller ended",
        body = ErasedAnswer),
        Command, JsonBody, Forbidden),
    security(("bearer" = [])),
)]
async fn erase_me(
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: web::Json<EraseMeRequest>,
) -> ApiResult<HttpResponse> {
    let me = actor.user_id;
    let user = users::find_by_id(&state.pool, me)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".to_owned()))?;
    let account = user.email.trim().to_lowercase();
    let address = req
        .peer_addr()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |peer| peer.ip());
    let failures = &state.limits.login_failures;
    failures.check(&account, address).map_err(too_many)?;
    let hash = users::find_credentials(&state.pool, &user.email)
        .await?
        .map(|(_, hash)| hash);
    let EraseMeRequest { password } = body.into_inner();
    if !password::verify(password, hash).await? {
        failures.failed(&account, address);
        tracing::info!("an erasure was refused: wrong password");
        return Err(ApiError::Forbidden(
            "the password is not correct".to_owned(),
        ));
    }
    failures.succeeded(&account, address);
    // The password is not part of what an Idempotency-Key covers: nothing of it is stored.
    erase(&state, &sessions, &req, &actor, me).await
}

/// Erase a user (admin): their texts read `[erased]` everywhere from now on, their email and
/// name are replaced, and their account can no longer sign in. Ids and amounts stay. An admin
/// erases themself with `DELETE /v1/me`.
#[utoipa::path(
    post, path = "/v1/admin/users/{id}/erase", operation_id = "eraseUser", tag = "users",
    params(UserId, IdempotencyKey),
    responses((status = 200, description = "Erased; every session of the user ended",
        body = ErasedAnswer),
        Command, Forbidden, NotFound),
    security(("bearer" = [])),
)]
async fn erase_user(
    state: web::Data<AppState>,
    sessions: web::Data<Sessions>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    require_role(&actor, Role::Admin)?;
    let person = id.into_inner();
    if person == actor.user_id {
        return Err(ApiError::Forbidden(
            "an admin cannot erase themself here; use DELETE /v1/me".to_owned(),
        ));
    }
    if users::find_by_id(&state.pool, person).await?.is_none() {
        return Err(ApiError::NotFound("no such user".to_owned()));
    }
    erase(&state, &sessions, &req, &actor, person).await
}

/// Appends `PersonErased` (or finds it appended), scrubs, forgets, answers who and how many
/// legacy texts stay stored.
async fn erase(
    state: &AppState,
    sessions: &Sessions,
    req: &HttpRequest,
    actor: &Actor,
    person: Uuid,
) -> ApiResult<HttpResponse> {
    let at = Utc::now();
    let command = PersonCommand::Erase {
        person,
        actor: actor.clone(),
        at,
    };
    let bus = state.commands.clone();
    let pool = state.pool.clone();
    let answer = execute(state, req, actor, &(), |ctx| async move {
        // Counted before the append: no text written since is plain, so the count stands.
        let legacy_texts = legacy::count(&pool, person).await?;
        bus.person(person, command, &ctx).await?;
        Answer::json(
            StatusCode::OK,
            &ErasedAnswer {
                person,
                legacy_texts,
            },
        )
    })
    .await?;
    // Also after a replayed or repeated erasure: the scrub is idempotent, and this finishes
    // one whose first try stopped after its append.
    scrub(state, sessions, person, at).await?;
    tracing::info!(user_id = %person, by = %actor.user_id, "person erased");
    let pool = state.pool.clone();
    tokio::spawn(async move { erasure::vacuum(&pool).await });
    Ok(answer)
}

async fn scrub(
    state: &AppState,
    sessions: &Sessions,
    person: Uuid,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let revoked = erasure::scrub(&mut tx, state.privacy.keyring(), person, at).await?;
    tx.commit().await?;
    state.privacy.keyring().forget(person);
    sessions.forget(&revoked);
    sessions.forget_user(person);
    Ok(())
}
