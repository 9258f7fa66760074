//! Who is calling: the `Authenticated` extractor that turns an access token into an [`Actor`],
//! and the role check handlers use after it.
//!
//! The token comes from `Authorization: Bearer`, or, without that header, from a browser
//! session's `__Host-bl_session` cookie (`auth::cookies`). A token is taken when its signature
//! and claims verify and its session still stands: an access token stops working as soon as
//! its refresh token is rotated (a refresh) or revoked (logout, reuse), not only when it
//! expires. A request authenticated by the cookie that may change something must also prove
//! that this server's own page sent it (`auth::csrf`); a bearer token needs no such proof, as
//! no browser sends one on its own.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use bountyline_domain::{Actor, Role};
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::csrf::{self, Csrf};
use crate::auth::sessions::Sessions;
use crate::auth::tokens::{AuthKeys, Verified};
use crate::auth::{cookies, refresh};
use crate::http::error::ApiError;

/// The verified caller. Put it in a handler's arguments to require a valid access token
/// (`Authorization: Bearer <token>`, or a browser session's cookie with, on anything but a
/// read, its CSRF proofs); without one the request is answered with a 401, without the
/// proofs with a 403.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Actor);

impl Authenticated {
    /// For SSE routes only: browsers' `EventSource` cannot set headers, so the token may also
    /// come as `?access_token=`, or from the session cookie, which `EventSource` sends to its
    /// own origin. The header wins, then the query. Query strings end up in access logs, which
    /// is why no other route accepts this. Answers the whole verification, since a stream
    /// outlives its request and must end with its token and session.
    pub async fn from_request_or_query(req: &HttpRequest) -> Result<Verified, ApiError> {
        if let Some(token) = bearer(req)?.or_else(|| query_token(req)) {
            return Ok(authenticate(req, &token).await?.0);
        }
        match cookies::read(req, cookies::SESSION) {
            Some(token) => from_cookie(req, &token).await,
            None => Err(ApiError::Unauthenticated(
                "an access token is required: send `Authorization: Bearer <token>` or \
                 `?access_token=<token>`, or sign in for a session cookie"
                    .to_owned(),
            )),
        }
    }

    pub fn into_inner(self) -> Actor {
        self.0
    }
}

impl std::ops::Deref for Authenticated {
    type Target = Actor;

    fn deref(&self) -> &Actor {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            // A bearer header wins: with one, the cookie is not looked at.
            let verified =
                match (bearer(&req)?, cookies::read(&req, cookies::SESSION)) {
                    (Some(token), _) => authenticate(&req, &token).await?.0,
                    (None, Some(token)) => from_cookie(&req, &token).await?,
                    (None, None) => return Err(ApiError::Unauthenticated(
                        "an access token is required: send `Authorization: Bearer <token>`, or \
                         sign in for a session cookie"
                            .to_owned(),
                    )),
                };
            Ok(Authenticated(verified.actor))
        })
    }
}

/// Authenticates by the session cookie's access token. A request that may change something
/// must come from an allowed origin (checked first: it needs no look-up) and carry the CSRF
/// token of the very session the cookie belongs to.
async fn from_cookie(req: &HttpRequest, token: &str) -> Result<Verified, ApiError> {
    let guarded = !csrf::is_safe(req.method());
    if guarded {
        csrf_guard(req)?.check_origin(req)?;
    }
    let (verified, family) = authenticate(req, token).await?;
    if guarded {
        csrf_guard(req)?.check_token(req, family)?;
    }
    Ok(verified)
}

/// Verifies `token`, checks that its session still stands and its account is enabled, and
/// takes the account's roles as they stand now (not as the token was issued with). Answers
/// the session's family besides.
async fn authenticate(req: &HttpRequest, token: &str) -> Result<(Verified, Uuid), ApiError> {
    let mut verified = keys(req)?.verify(token)?;
    match sessions(req)?.current(verified.session).await? {
        Some(current) if current.user == verified.actor.user_id => {
            verified.actor = Actor::new(current.user, current.roles);
            Ok((verified, current.family))
        }
        _ => {
            tracing::debug!(user_id = %verified.actor.user_id, "access token of an ended session refused");
            Err(ApiError::Unauthenticated(
                "the access token's session has ended (logged out, refreshed since, or the \
                 account disabled): use the newest access token, or log in again"
                    .to_owned(),
            ))
        }
    }
}

/// Resolves when `verified` stops being good enough to keep serving: its token expires, or its
/// session is found ended (checked every `recheck`; a check the database cannot answer keeps
/// the stream, as the token itself is still valid).
pub fn credentials_end(
    req: &HttpRequest,
    verified: &Verified,
    recheck: std::time::Duration,
) -> Result<crate::sse::Ends, ApiError> {
    let pool = pool(req)?.clone();
    let session = verified.session;
    let left = verified.expires_at - chrono::Utc::now().timestamp();
    let expiry = tokio::time::sleep(std::time::Duration::from_secs(left.max(0) as u64));
    Ok(Box::pin(async move {
        let ended = async {
            loop {
                tokio::time::sleep(recheck).await;
                if let Ok(false) = refresh::session_is_live(&pool, session).await {
                    return;
                }
            }
        };
        tokio::select! {
            _ = expiry => {}
            _ = ended => {}
        }
    }))
}

fn sessions(req: &HttpRequest) -> Result<&Sessions, ApiError> {
    req.app_data::<web::Data<Sessions>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("Sessions is not registered as app data"))
        })
}

fn csrf_guard(req: &HttpRequest) -> Result<&Csrf, ApiError> {
    req.app_data::<web::Data<Csrf>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("Csrf is not registered as app data")))
}

fn pool(req: &HttpRequest) -> Result<&PgPool, ApiError> {
    req.app_data::<web::Data<PgPool>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("PgPool is not registered as app data")))
}

/// The token of an `Authorization: Bearer` header; `None` when there is no such header, a 401
/// when there is one we cannot use.
pub(crate) fn bearer(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`".to_owned())
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(Some(token.trim().to_owned()))
}

fn query_token(req: &HttpRequest) -> Option<String> {
    #[derive(Deserialize)]
    struct TokenQuery {
        access_token: Option<String>,
    }
    web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().access_token)
        .filter(|t| !t.is_empty())
}

fn keys(req: &HttpRequest) -> Result<&AuthKeys, ApiError> {
    req.app_data::<web::Data<AuthKeys>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("AuthKeys is not registered as app data"))
        })
}

/// Refuses with a 403 unless `actor` holds `role`.
/// 403 unless the actor is an auditor or an admin (the audit routes).
pub fn require_oversight(actor: &Actor) -> Result<(), ApiError> {
    if actor.oversees() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this needs the auditor or admin role".into(),
        ))
    }
}

pub fn require_role(actor: &Actor, role: Role) -> Result<(), ApiError> {
    if actor.has(role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this needs the {} role",
            role.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn a_bearer_header_is_read_and_other_schemes_are_refused() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer abc.def.ghi"))
            .to_http_request();
        assert_eq!(bearer(&req).unwrap().as_deref(), Some("abc.def.ghi"));

        let req = TestRequest::default().to_http_request();
        assert_eq!(bearer(&req).unwrap(), None);

        for value in ["Basic abc", "Bearer ", "Bearer"] {
            let req = TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request();
            assert!(
                matches!(bearer(&req), Err(ApiError::Unauthenticated(_))),
                "{value}"
            );
        }
    }

    #[test]
    fn the_query_token_is_read_only_when_present_and_not_empty() {
        let req = TestRequest::with_uri("/v1/streams/events?access_token=abc").to_http_request();
        assert_eq!(query_token(&req).as_deref(), Some("abc"));
        let req = TestRequest::with_uri("/v1/streams/events?access_token=").to_http_request();
        assert_eq!(query_token(&req), None);
    }

    #[test]
    fn roles_are_required_as_asked() {
        let auditor = Actor::new(uuid::Uuid::new_v4(), vec![Role::Member, Role::Auditor]);
        assert!(require_role(&auditor, Role::Auditor).is_ok());
        assert!(matches!(
            require_role(&auditor, Role::Admin),
            Err(ApiError::Forbidden(_))
        ));
        assert!(require_oversight(&auditor).is_ok());
        let member = Actor::new(uuid::Uuid::new_v4(), vec![Role::Member]);
        assert!(matches!(
            require_oversight(&member),
            Err(ApiError::Forbidden(_))
        ));
    }
}
