//! Access tokens: short-lived HS256 JWTs that carry who the caller is and which roles they hold.
//!
//! Verification pins the algorithm to HS256 and requires `iss`, `aud`, `exp`, `nbf` and `sub`,
//! so a token signed with another algorithm (or `none`), for another audience or issuer, or
//! outside its validity window is refused. Roles are copied in at issue time; a role change
//! reaches the caller at the next refresh, which re-reads them from the users table.

use std::fmt;

use bountyline_domain::{Actor, Role};
use chrono::{Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthSettings;
use crate::http::error::{ApiError, ApiResult};

/// Clock skew tolerated between this server's instances, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub roles: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session: the refresh token issued with this access token. Logging out or
    /// refreshing ends it, and the access token with it.
    pub sid: Uuid,
}

/// A verified access token: who it speaks for and the session it belongs to, which the
/// caller still has to find live ([`crate::auth::refresh::session_is_live`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub actor: Actor,
    pub session: Uuid,
    /// When the token expires (`exp`, seconds since the epoch).
    pub expires_at: i64,
}

/// A freshly signed access token and its lifetime in seconds (`expires_in` of the response).
pub struct AccessToken {
    pub token: String,
    pub expires_in: i64,
}

/// The signing and verifying keys plus the token settings; shared as `web::Data<AuthKeys>`.
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl AuthKeys {
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: Duration::seconds(settings.access_ttl_secs),
            refresh_ttl: Duration::seconds(settings.refresh_ttl_secs),
        }
    }

    /// How long a refresh token lives from its issue.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// Signs an access token for `user_id` holding `roles` in `session`, valid from now for
    /// the access TTL.
    pub fn issue(&self, user_id: Uuid, roles: &[Role], session: Uuid) -> ApiResult<AccessToken> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl.num_seconds(),
            jti: Uuid::new_v4(),
            sid: session,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok(AccessToken {
            token,
            expires_in: self.access_ttl.num_seconds(),
        })
    }

    /// Verifies an access token's signature and claims and returns whom it speaks for; a 401
    /// otherwise.
    pub fn verify(&self, token: &str) -> ApiResult<Verified> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the access token has expired",
                    ErrorKind::ImmatureSignature => "the access token is not valid yet",
                    _ => "the access token is invalid",
                };
                tracing::debug!(error = %e, "access token refused");
                ApiError::Unauthenticated(why.to_owned())
            })?;
        // A role this build does not know is dropped rather than refused: losing a role can
        // only narrow what the caller may do.
        let roles = data
            .claims
            .roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect();
        Ok(Verified {
            actor: Actor::new(data.claims.sub, roles),
            session: data.claims.sid,
            expires_at: data.claims.exp,
        })
    }
}

// Hand-written so that the keys can never reach a log line through `{:?}`.
impl fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl_secs", &self.access_ttl.num_seconds())
            .field("refresh_ttl_secs", &self.refresh_ttl.num_seconds())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

    fn settings() -> AuthSettings {
        AuthSettings {
            jwt_secret: SECRET.into(),
            issuer: "bountyline".into(),
            audience: "bountyline-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 3600,
            session_cache_ms: 0,
            hashing_concurrency: 1,
        }
    }

    fn claims(user: Uuid) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            sub: user,
            roles: vec!["member".into(), "admin".into()],
            iss: "bountyline".into(),
            aud: "bountyline-api".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: Uuid::new_v4(),
            sid: Uuid::new_v4(),
        }
    }

    fn sign(alg: Algorithm, claims: &Claims) -> String {
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
    }

    fn refused(keys: &AuthKeys, token: &str) -> String {
        match keys.verify(token) {
            Err(ApiError::Unauthenticated(why)) => why,
            other => panic!("expected a 401, got {other:?}"),
        }
    }

    #[test]
    fn an_issued_token_verifies_to_the_same_actor() {
        let keys = AuthKeys::new(&settings());
        let user = Uuid::new_v4();
        let session = Uuid::new_v4();
        let issued = keys
            .issue(user, &[Role::Member, Role::Auditor], session)
            .unwrap();
        assert_eq!(issued.expires_in, 900);
        let verified = keys.verify(&issued.token).unwrap();
        assert_eq!(
            verified.actor,
            Actor::new(user, vec![Role::Member, Role::Auditor])
        );
        assert_eq!(verified.session, session);
    }

    #[test]
    fn a_hand_built_token_with_the_right_claims_verifies() {
        let keys = AuthKeys::new(&settings());
        let user = Uuid::new_v4();
        let verified = keys.verify(&sign(Algorithm::HS256, &claims(user))).unwrap();
        assert!(verified.actor.is_admin());
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let keys = AuthKeys::new(&settings());
        let mut c = claims(Uuid::new_v4());
        c.exp = Utc::now().timestamp() - 30;
        assert!(refused(&keys, &sign(Algorithm::HS256, &c)).contains("expired"));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let keys = AuthKeys::new(&settings());
        let mut c = claims(Uuid::new_v4());
        c.nbf = Utc::now().timestamp() + 120;
        refused(&keys, &sign(Algorithm::HS256, &c));
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let keys = AuthKeys::new(&settings());
        let mut c = claims(Uuid::new_v4());
        c.aud = "someone-else".into();
        refused(&keys, &sign(Algorithm::HS256, &c));
    }

    #[test]
    fn a_token_from_another_issuer_is_refused() {
        let keys = AuthKeys::new(&settings());
        let mut c = claims(Uuid::new_v4());
        c.iss = "mallory".into();
        refused(&keys, &sign(Algorithm::HS256, &c));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let keys = AuthKeys::new(&settings());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Uuid::new_v4())).unwrap());
        refused(&keys, &format!("{header}.{body}."));
    }

    #[test]
    fn a_token_signed_with_hs384_and_the_right_secret_is_refused() {
        let keys = AuthKeys::new(&settings());
        refused(&keys, &sign(Algorithm::HS384, &claims(Uuid::new_v4())));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let keys = AuthKeys::new(&settings());
        let other = EncodingKey::from_secret(b"another-secret-also-32-bytes-long!!");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(Uuid::new_v4()),
            &other,
        )
        .unwrap();
        refused(&keys, &token);
    }

    #[test]
    fn a_token_whose_payload_was_changed_is_refused() {
        let keys = AuthKeys::new(&settings());
        let mut c = claims(Uuid::new_v4());
        c.roles = vec!["member".into()];
        let token = sign(Algorithm::HS256, &c);
        let mut parts: Vec<&str> = token.split('.').collect();
        c.roles.push("admin".into());
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        parts[1] = &forged;
        refused(&keys, &parts.join("."));
    }

    #[test]
    fn a_token_missing_a_required_claim_is_refused() {
        let keys = AuthKeys::new(&settings());
        let mut c = serde_json::to_value(claims(Uuid::new_v4())).unwrap();
        c.as_object_mut().unwrap().remove("nbf");
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &key).unwrap();
        refused(&keys, &token);
        refused(&keys, "not-a-jwt");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let keys = AuthKeys::new(&settings());
        let shown = format!("{keys:?}");
        assert!(!shown.contains(SECRET));
        assert!(!shown.contains("test-secret"));
    }
}
