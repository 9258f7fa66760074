//! `/v1/auth`: register, log in, refresh, log out, and log out everywhere.
//!
//! Login answers a wrong password and an unknown email with the same 401 body, after the same
//! amount of hashing work, so neither the answer nor its timing tells whether an account exists.
//! Logout is authenticated by the refresh token it revokes, not by a bearer header: a client
//! whose access token has lapsed must still be able to log out. Repeated failed logins of one
//! account (existing or not) from one address wait longer and longer (429 with Retry-After;
//! see `http::login_throttle`); the owner signing in from elsewhere is not slowed.
//!
//! A browser may sign in with `"session": "cookie"`: the tokens then travel in `HttpOnly`
//! cookies its scripts cannot read (`auth::cookies`), and refresh and logout take the refresh
//! cookie instead of a body, with the CSRF proofs of `auth::csrf` (the request's `Origin` and
//! the session's `X-CSRF-Token`) checked before anything is rotated or revoked.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::net::{IpAddr, Ipv6Addr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::csrf::Csrf;
use crate::auth::refresh::{self, IssuedRefresh, Rotation};
use crate::auth::sessions::Sessions;
use crate::auth::users::{self, NewUser, User};
use crate::auth::Authenticated;
use crate::auth::{cookies, password, AuthKeys};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::optional_json;
use crate::http::limits::too_many;
use crate::http::openapi::params::RefreshCookie;
use crate::http::openapi::problems::{
    Conflict, Forbidden, JsonBody, RawJsonBody, TooMany, Unauthenticated,
};
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
    /// How the sign-in is kept: `token` (the default) answers a token pair; `cookie` (for
    /// browsers) sets the tokens as `HttpOnly` cookies and answers only the CSRF token.
    #[serde(default)]
    #[schema(default = "token")]
    session: SessionKind,
}

/// How a sign-in is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum SessionKind {
    /// A token pair in the answer, for clients that keep their own tokens.
    #[default]
    Token,
    /// `HttpOnly` cookies, out of the page's scripts' reach, for browsers.
    Cookie,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RefreshToken, example = json!({"refresh_token": "rt_3q2x..."}))]
struct RefreshRequest {
    /// The refresh token. Left out (or the body left out), the `__Secure-bl_refresh` cookie
    /// of a browser session is used, with its CSRF proofs.
    refresh_token: Option<String>,
}

/// A sign-in's answer: a token pair, or for a cookie session the CSRF token alone.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum SignedIn {
    Tokens(TokenPair),
    Cookie(CookieSession),
}

/// A browser session: the tokens are in `HttpOnly` cookies (`Set-Cookie`), out of the page's
/// scripts' reach.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"token_type": "Cookie", "expires_in": 900,
    "csrf_token": "q1vU7m0cW8Jd3nZ5yT2bXkR4fA6sE9hL0pG1iC3oN8w"}))]
struct CookieSession {
    /// Always `Cookie`.
    token_type: &'static str,
    /// Seconds until the access token (and its cookie) expires: refresh before.
    expires_in: i64,
    /// The session's CSRF token: send it as `X-CSRF-Token` (with the page's own `Origin`) on
    /// every request that changes something. Also in the `__Host-bl_csrf` cookie, for a page
    /// reloaded; it stays the same through refreshes until the session ends.
    csrf_token: String,
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

/// Exchange an email and password for a token pair, or for a browser session.
///
/// With `"session": "cookie"` the tokens are set as `HttpOnly` cookies and the answer carries
/// only the session's CSRF token. A wrong password and an unknown email get the same 401,
/// after the same work.
#[utoipa::path(
    post, path = "/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "A token pair (`token_type` `Bearer`), or for \
        `\"session\": \"cookie\"` a browser session (`token_type` `Cookie`)", body = SignedIn,
        headers(("Set-Cookie" = String, description = "For a browser session only, three \
            cookies: `__Host-bl_session` (the access token; `HttpOnly; Secure; SameSite=Strict; \
            Path=/`, as long as the token lives), `__Secure-bl_refresh` (the refresh token; \
            `HttpOnly; Secure; SameSite=Strict; Path=/v1/auth`) and `__Host-bl_csrf` (the CSRF \
            token, readable by the page; `Secure; SameSite=Strict; Path=/`), the last two as \
            long as the refresh token lives."))), JsonBody,
        Unauthenticated, Forbidden, TooMany),
)]
async fn login(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    keys: web::Data<AuthKeys>,
    csrf: web::Data<Csrf>,
    body: web::Json<LoginRequest>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let LoginRequest {
        email,
        password,
        session,
    } = body.into_inner();
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
    signed_in(&keys, &csrf, &user, refresh, session)
}

/// Exchange a refresh token for a new pair; the old refresh token stops working.
///
/// A browser session sends no body (or `{}`): its `__Secure-bl_refresh` cookie is used, with
/// the page's own `Origin` and the session's `X-CSRF-Token` (403 `csrf-rejected` otherwise,
/// and nothing rotates), and the answer sets fresh cookies. A refresh token presented again
/// after it was used ends its whole session family, whichever way it came.
#[utoipa::path(
    post, path = "/v1/auth/refresh", operation_id = "refresh", tag = "auth",
    params(RefreshCookie),
    request_body = Option<RefreshRequest>,
    responses((status = 200, description = "A new token pair, or for a browser session fresh \
        cookies", body = SignedIn, headers(("Set-Cookie" = String, description = "For a browser session only, three \
            cookies: `__Host-bl_session` (the access token; `HttpOnly; Secure; SameSite=Strict; \
            Path=/`, as long as the token lives), `__Secure-bl_refresh` (the refresh token; \
            `HttpOnly; Secure; SameSite=Strict; Path=/v1/auth`) and `__Host-bl_csrf` (the CSRF \
            token, readable by the page; `Secure; SameSite=Strict; Path=/`), the last two as \
            long as the refresh token lives."))),
        RawJsonBody, Unauthenticated, TooMany),
)]
async fn refresh(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    keys: web::Data<AuthKeys>,
    sessions: web::Data<Sessions>,
    csrf: web::Data<Csrf>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let RefreshRequest { refresh_token } = optional_json(&body)?;
    let (token, session) = match refresh_token {
        Some(token) => (token, SessionKind::Token),
        None => (from_cookie(&req, &pool, &csrf).await?, SessionKind::Cookie),
    };
    let rotated = match refresh::rotate(&pool, &token, keys.refresh_ttl()).await? {
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
    signed_in(&keys, &csrf, &user, rotated.refresh, session)
}

/// Revoke a refresh token and every token rotated from it.
///
/// Authenticated by the refresh token itself, so a client whose access token has lapsed can
/// still log out; an unknown token changes nothing. A browser session sends no body (or
/// `{}`): its `__Secure-bl_refresh` cookie is used, with the page's own `Origin` and the
/// session's `X-CSRF-Token` (403 `csrf-rejected` otherwise, and nothing is revoked), and the
/// answer clears its cookies.
#[utoipa::path(
    post, path = "/v1/auth/logout", operation_id = "logout", tag = "auth",
    params(RefreshCookie),
    request_body = Option<RefreshRequest>,
    responses((status = 204, description = "Logged out",
        headers(("Set-Cookie" = String, description = "For a browser session only: its three \
            cookies cleared (`Max-Age=0`)."))),
        RawJsonBody, Unauthenticated, TooMany),
)]
async fn logout(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    csrf: web::Data<Csrf>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let RefreshRequest { refresh_token } = optional_json(&body)?;
    if let Some(token) = refresh_token {
        let revoked = refresh::revoke_family(&pool, &token).await?;
        sessions.forget(&revoked);
        return Ok(HttpResponse::NoContent().finish());
    }
    let token = refresh_cookie(&req)?;
    csrf.check_origin(&req)?;
    // A token never issued ends nothing; the browser forgets it all the same.
    if let Some(family) = refresh::family_of(&pool, &token).await? {
        csrf.check_token(&req, family)?;
        let revoked = refresh::revoke_family(&pool, &token).await?;
        sessions.forget(&revoked);
    }
    Ok(clearing(&mut HttpResponse::NoContent()).finish())
}

/// Log out everywhere: every session of the caller ends, every device's tokens with it. A
/// browser's session cookies are cleared too.
#[utoipa::path(
    post, path = "/v1/auth/logout-all", operation_id = "logoutAll", tag = "auth",
    responses((status = 204, description = "Every session of the caller ended",
        headers(("Set-Cookie" = String, description = "For a browser session only: its three \
            cookies cleared (`Max-Age=0`)."))),
        Unauthenticated, TooMany),
    security(("bearer" = [])),
)]
async fn logout_all(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    sessions: web::Data<Sessions>,
    caller: Authenticated,
) -> ApiResult<HttpResponse> {
    let revoked = refresh::revoke_user(&pool, caller.user_id).await?;
    sessions.forget(&revoked);
    tracing::info!(user_id = %caller.user_id, sessions = revoked.len(), "logged out everywhere");
    let mut res = HttpResponse::NoContent();
    if cookies::any(&req) {
        clearing(&mut res);
    }
    Ok(res.finish())
}

/// The refresh token of a browser session's cookie, once the request proved that this
/// server's own page sent it: its `Origin`, then the `X-CSRF-Token` of the family the token
/// belongs to. Only reads until then, so a refused request rotates nothing.
async fn from_cookie(req: &HttpRequest, pool: &PgPool, csrf: &Csrf) -> ApiResult<String> {
    let token = refresh_cookie(req)?;
    csrf.check_origin(req)?;
    let family = refresh::family_of(pool, &token)
        .await?
        .ok_or_else(|| ApiError::Unauthenticated("the refresh token is not valid".to_owned()))?;
    csrf.check_token(req, family)?;
    Ok(token)
}

fn refresh_cookie(req: &HttpRequest) -> ApiResult<String> {
    cookies::read(req, cookies::REFRESH).ok_or_else(|| {
        ApiError::Unauthenticated(
            "a refresh token is required: send `{\"refresh_token\": ...}`, or the session's \
             refresh cookie"
                .to_owned(),
        )
    })
}

/// The answer of a sign-in or a refresh: a token pair, or the cookies of a browser session.
fn signed_in(
    keys: &AuthKeys,
    csrf: &Csrf,
    user: &User,
    refresh: IssuedRefresh,
    session: SessionKind,
) -> ApiResult<HttpResponse> {
    let access = keys.issue(user.id, &user.roles, refresh.id)?;
    // Tokens must not be cached by anything between us and the client (RFC 6749 §5.1).
    let mut res = HttpResponse::Ok();
    res.insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"));
    let answer = match session {
        SessionKind::Token => SignedIn::Tokens(TokenPair {
            access_token: access.token,
            refresh_token: refresh.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
        }),
        SessionKind::Cookie => {
            let csrf_token = csrf.token(refresh.family_id);
            let set = cookies::set(
                &access.token,
                access.expires_in,
                &refresh.token,
                keys.refresh_ttl().num_seconds(),
                &csrf_token,
            );
            for cookie in set {
                res.append_header((header::SET_COOKIE, cookie));
            }
            SignedIn::Cookie(CookieSession {
                token_type: "Cookie",
                expires_in: access.expires_in,
                csrf_token,
            })
        }
    };
    Ok(res.json(answer))
}

/// Adds the `Set-Cookie` headers that make a browser forget its session.
fn clearing(res: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    for cookie in cookies::cleared() {
        res.append_header((header::SET_COOKIE, cookie));
    }
    res
}
