//! Who is calling: the `Authenticated` extractor that turns a bearer access token into an
//! [`Actor`], and the role check handlers use after it.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use bountyline_domain::{Actor, Role};
use serde::Deserialize;

use crate::auth::tokens::AuthKeys;
use crate::http::error::ApiError;

/// The verified caller. Put it in a handler's arguments to require a valid access token
/// (`Authorization: Bearer <token>`); without one the request is answered with a 401.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Actor);

impl Authenticated {
    /// For SSE routes only: browsers' `EventSource` cannot set headers, so the token may also
    /// come as `?access_token=`. The header wins when both are present. Query strings end up in
    /// access logs, which is why no other route accepts this.
    pub fn from_request_or_query(req: &HttpRequest) -> Result<Actor, ApiError> {
        let token = match bearer(req)? {
            Some(token) => token,
            None => query_token(req).ok_or_else(|| {
                ApiError::Unauthenticated(
                    "an access token is required: send `Authorization: Bearer <token>` \
                     or `?access_token=<token>`"
                        .to_owned(),
                )
            })?,
        };
        keys(req)?.verify(&token)
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
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(from_header(req).map(Authenticated))
    }
}

fn from_header(req: &HttpRequest) -> Result<Actor, ApiError> {
    let token = bearer(req)?.ok_or_else(|| {
        ApiError::Unauthenticated(
            "an access token is required: send `Authorization: Bearer <token>`".to_owned(),
        )
    })?;
    keys(req)?.verify(&token)
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
    use crate::config::AuthSettings;
    use actix_web::test::TestRequest;
    use uuid::Uuid;

    fn keys() -> AuthKeys {
        AuthKeys::new(&AuthSettings {
            jwt_secret: "test-secret-that-is-at-least-32-bytes-long".into(),
            issuer: "bountyline".into(),
            audience: "bountyline-api".into(),
            access_ttl_secs: 60,
            refresh_ttl_secs: 60,
        })
    }

    #[test]
    fn a_bearer_header_yields_the_actor_and_its_absence_a_401() {
        let keys = keys();
        let user = Uuid::new_v4();
        let token = keys.issue(user, &[Role::Member]).unwrap().token;
        let data = web::Data::new(keys);

        let req = TestRequest::default()
            .app_data(data.clone())
            .insert_header((header::AUTHORIZATION, format!("bearer {token}")))
            .to_http_request();
        assert_eq!(from_header(&req).unwrap().user_id, user);

        let req = TestRequest::default()
            .app_data(data.clone())
            .to_http_request();
        assert!(matches!(
            from_header(&req),
            Err(ApiError::Unauthenticated(_))
        ));

        let req = TestRequest::default()
            .app_data(data)
            .insert_header((header::AUTHORIZATION, format!("Basic {token}")))
            .to_http_request();
        assert!(matches!(
            from_header(&req),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn sse_routes_also_accept_the_token_in_the_query() {
        let keys = keys();
        let user = Uuid::new_v4();
        let token = keys.issue(user, &[Role::Auditor]).unwrap().token;
        let req = TestRequest::with_uri(&format!("/v1/streams/events?access_token={token}"))
            .app_data(web::Data::new(keys))
            .to_http_request();
        assert!(from_header(&req).is_err());
        let actor = Authenticated::from_request_or_query(&req).unwrap();
        assert_eq!(actor.user_id, user);
        assert!(require_role(&actor, Role::Auditor).is_ok());
        assert!(matches!(
            require_role(&actor, Role::Admin),
            Err(ApiError::Forbidden(_))
        ));
    }
}
