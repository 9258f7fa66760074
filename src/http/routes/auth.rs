//! `/v1/auth`: register, log in, refresh, log out, and log out everywhere.
//!
//! Login answers a wrong password and an unknown email with the same 401 body, after the same
//! amount of hashing work, so neither the answer nor its timing tells whether an account exists.
//! Logout is authenticated by the refresh token it revokes, not by a bearer header: a client
//! whose access token has lapsed must still be able to log out. Repeated failed logins of one
//! account (existing or not) from one address wait longer and longer (429 with Retry-After;
//! see `http::login_throttle`); the owner signing in from elsewhere is not slowed.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::net::{IpAddr, Ipv6Addr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::refresh::{self, IssuedRefresh, Rotation};
use crate::auth::sessions::Sessions;
use crate::auth::users::{self, NewUser, User};
use crate::auth::Authenticated;
use crate::auth::{password, AuthKeys};
use crate::http::error::{ApiError, ApiResult};
use crate::http::limits::too_many;
use crate::http::openapi::problems::{Conflict, Forbidden, JsonBody, TooMany, Unauthenticated};
use crate::state::AppState;
use bountyline_domain::Role;

pub fn config(cfg: &mut web::ServiceConfig) {
    // Plain resources rather than a `/v1/auth` scope: a scope would claim the whole prefix.
    cfg.route("/v1/auth/register", web::post().to(register))
        .route("/v1/auth/login", web::post().to(login))
        .route("/v1/auth/refresh", web::post().to(refresh))
        .route("/v1/auth/logout", web::post().to(logout))
        .route("/v1/auth/logout-all", web::post().to(logout_all));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Register, example = json!({"email": "ada@example.com",
    "password": "correct horse battery", "display_name": "Ada"}))]
struct RegisterRequest {
    #[schema(schema_with = crate::http::openapi::values::email)]
    email: String,
    #[schema(schema_with = crate::http::openapi::values::password)]
    password: SecretString,
    #[schema(schema_with = crate::http::openapi::values::display_name)]
    display_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Login, example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
struct LoginRequest {
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RefreshToken, example = json!({"refresh_token": "rt_3q2x..."}))]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Serialize, ToSchema)]
struct TokenPair {
    /// A JWT for `Authorization: Bearer`.
    access_token: String,
    /// Single use: refreshing answers a new pair and retires this one.
    refresh_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: i64,
}

/// Create an account (with the member role).
#[utoipa::path(
    post, path = "/v1/auth/register", operation_id = "register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, description = "The new user", body = User), JsonBody, Conflict,
        TooMany),
)]
async fn register(
    pool: web::Data<PgPool>,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let RegisterRequest {
        email,
        password,
        display_name,
    } = body.into_inner();
    let new = NewUser::parse(&email, password, &display_name)?;
    let user: User = users::create(&pool, new, &[Role::Member]).await?;
    metrics::counter!("bountyline_auth_registrations_total").increment(1);
    Ok(HttpResponse::Created().json(user))
}

/// Exchange an email and password for a token pair.
///
/// A wrong password and an unknown email get the same 401, after the same work.
#[utoipa::path(
    post, path = "/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "A token pair", body = TokenPair), JsonBody,
        Unauthenticated, Forbidden, TooMany),
)]
async fn login(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    keys: web::Data<AuthKeys>,
    body: web::Json<LoginRequest>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { email, password } = body.into_inner();
    let failures = &state.limits.login_failures;
    let account = email.trim().to_lowercase();
    let address = req
        .peer_addr()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |peer| peer.ip());
    failures.check(&account, address).map_err(too_many)?;
    let (user, hash) = match users::find_credentials(&pool, &email).await? {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    // Always verify, against a dummy hash when the email is unknown: equal work, equal answer.
    let verified = password::verify(password, hash).await?;
    let user = match user {
        Some(user) if verified && user.disabled => {
            metrics::counter!("bountyline_auth_logins_total", "outcome" => "disabled").increment(1);
            return Err(ApiError::Forbidden(
                "this account is disabled; ask an admin".to_owned(),
            ));
        }
        Some(user) if verified => user,
        _ => {
            failures.failed(&account, address);
            metrics::counter!("bountyline_auth_logins_total", "outcome" => "refused").increment(1);
            tracing::info!("login refused");
            return Err(ApiError::Unauthenticated(
                "the email or password is not correct".to_owned(),
            ));
        }
    };
    failures.succeeded(&account, address);
    let refresh = refresh::issue(&pool, user.id, Uuid::new_v4(), keys.refresh_ttl()).await?;
    metrics::counter!("bountyline_auth_logins_total", "outcome" => "ok").increment(1);
    token_pair(&keys, &user, refresh)
}

/// Exchange a refresh token for a new pair; the old refresh token stops working.
#[utoipa::path(
    post, path = "/v1/auth/refresh", operation_id = "refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair", body = TokenPair), JsonBody,
        Unauthenticated, TooMany),
)]
async fn refresh(
    pool: web::Data<PgPool>,
    keys: web::Data<AuthKeys>,
    sessions: web::Data<Sessions>,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let rotated = match refresh::rotate(&pool, &body.refresh_token, keys.refresh_ttl()).await? {
        Rotation::Rotated(rotated) => rotated,
        // A reused token revoked its whole family: those sessions, and no one else's, end here.
        Rotation::Reused { revoked } => {
            sessions.forget(&revoked);
            return Err(refresh::reused());
        }
    };
    sessions.forget(&[rotated.spent]);
    // Roles are re-read here, so a grant or removal reaches the caller at this refresh.
    let user = users::find_by_id(&pool, rotated.user_id)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".to_owned()))?;
    token_pair(&keys, &user, rotated.refresh)
}

/// Revoke a refresh token and every token rotated from it.
///
/// Authenticated by the refresh token itself, so a client whose access token has lapsed can
/// still log out; an unknown token changes nothing.
#[utoipa::path(
    post, path = "/v1/auth/logout", operation_id = "logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out"), JsonBody, TooMany),
)]
async fn logout(
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    body: web::Json<RefreshRequest>,
) -> ApiResult<HttpResponse> {
    let revoked = refresh::revoke_family(&pool, &body.refresh_token).await?;
    sessions.forget(&revoked);
    Ok(HttpResponse::NoContent().finish())
}

/// Log out everywhere: every session of the caller ends, every device's tokens with it.
#[utoipa::path(
    post, path = "/v1/auth/logout-all", operation_id = "logoutAll", tag = "auth",
    responses((status = 204, description = "Every session of the caller ended"),
        Unauthenticated, TooMany),
    security(("bearer" = [])),
)]
async fn logout_all(
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    caller: Authenticated,
) -> ApiResult<HttpResponse> {
    let revoked = refresh::revoke_user(&pool, caller.user_id).await?;
    sessions.forget(&revoked);
    tracing::info!(user_id = %caller.user_id, sessions = revoked.len(), "logged out everywhere");
    Ok(HttpResponse::NoContent().finish())
}

fn token_pair(keys: &AuthKeys, user: &User, refresh: IssuedRefresh) -> ApiResult<HttpResponse> {
    let access = keys.issue(user.id, &user.roles, refresh.id)?;
    // Tokens must not be cached by anything between us and the client (RFC 6749 §5.1).
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
        }))
}
