//! The CSRF defence of browser sessions. A browser sends the session cookie with every request
//! to this server, whichever page made it, so a request that changes something and is
//! authenticated by the cookie is taken only with two proofs that this server's own page sent
//! it (OWASP's "Origin check plus a token"):
//!
//! - `Origin`: present, once, and the server's own origin (the request's scheme and `Host`)
//!   or one of `http.allowed_origins`. Browsers send it with every POST, PUT and DELETE, and a
//!   page cannot set it; `null` (sandboxed frames, redirects across sites) is never taken.
//! - `X-CSRF-Token`: HMAC-SHA256 of the session's refresh-token family (one per sign-in, kept
//!   through refreshes) under a key derived from `auth.jwt_secret`, in base64url. The sign-in
//!   answer and the script-readable `__Host-bl_csrf` cookie carry it; another site's page can
//!   read neither. It is checked against the session the request authenticates as, never
//!   against a cookie, so a token of another session (or one planted in a cookie) does not
//!   verify. The comparison is constant time.
//!
//! Reads (GET, HEAD, OPTIONS) need neither: they change nothing. Requests with a bearer token
//! need neither: a browser never adds one on its own.

use std::fmt;

use actix_web::http::{header, Method};
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};

/// The header a page sends its session's token in.
pub const HEADER_NAME: &str = "X-CSRF-Token";

/// What the token key is derived for, so that it is never the signing key of anything else.
const KEY_PURPOSE: &[u8] = b"bountyline/csrf-token/v1";

/// The keyed MAC and the origins the check takes; shared as `web::Data<Csrf>`.
pub struct Csrf {
    /// HMAC-SHA256 keyed with the derived key, cloned for each token.
    keyed: Hmac<Sha256>,
    /// `http.allowed_origins`, normalised.
    allowed: Vec<String>,
}

impl Csrf {
    /// From the token signing secret (`auth.jwt_secret`) and `http.allowed_origins`
    /// (comma-separated).
    pub fn new(secret: &SecretString, allowed_origins: &str) -> anyhow::Result<Self> {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())?;
        derive.update(KEY_PURPOSE);
        let key = derive.finalize().into_bytes();
        Ok(Self {
            keyed: Hmac::<Sha256>::new_from_slice(&key)?,
            allowed: allowed_origins.split(',').filter_map(normalise).collect(),
        })
    }

    /// The token of the session family `family`.
    pub fn token(&self, family: Uuid) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(family).finalize().into_bytes())
    }

    /// The `Origin` proof: it needs no session, so it is checked before anything is looked up
    /// or verified.
    pub fn check_origin(&self, req: &HttpRequest) -> ApiResult<()> {
        let mut sent = req.headers().get_all(header::ORIGIN);
        let origin = match (sent.next(), sent.next()) {
            (Some(value), None) => value.to_str().ok().and_then(normalise),
            _ => None,
        };
        let Some(origin) = origin else {
            return Err(refused(
                "origin",
                "a request that changes something with the session cookie needs one `Origin` \
                 header naming this server's origin; send it from this server's own page",
            ));
        };
        if own_origin(req).is_some_and(|own| own == origin) || self.allowed.contains(&origin) {
            Ok(())
        } else {
            tracing::info!(%origin, "cookie-authenticated request from another origin refused");
            Err(refused(
                "origin",
                "this origin may not send requests with the session cookie",
            ))
        }
    }

    /// The token proof: `X-CSRF-Token` must be the token of `family`.
    pub fn check_token(&self, req: &HttpRequest, family: Uuid) -> ApiResult<()> {
        let presented = req
            .headers()
            .get(HEADER_NAME)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                refused(
                    "token",
                    "a request that changes something with the session cookie needs the \
                     session's `X-CSRF-Token` (from the sign-in answer or the `__Host-bl_csrf` \
                     cookie)",
                )
            })?;
        if self.verifies(family, presented) {
            Ok(())
        } else {
            Err(refused(
                "token",
                "the X-CSRF-Token is not this session's: use the token its sign-in answered, \
                 or sign in again",
            ))
        }
    }

    fn verifies(&self, family: Uuid, presented: &str) -> bool {
        let Ok(presented) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        // Constant time: how long a wrong token takes says nothing of the right one.
        self.mac(family).verify_slice(&presented).is_ok()
    }

    fn mac(&self, family: Uuid) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(family.as_bytes());
        mac
    }
}

// Hand-written so that the key can never reach a log line through `{:?}`.
impl fmt::Debug for Csrf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csrf")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// Whether `method` only reads (RFC 9110 §9.2.1's safe methods): such requests need no proof.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The refusal, counted by the proof that was missing (`origin` or `token`).
fn refused(proof: &'static str, why: &str) -> ApiError {
    metrics::counter!("bountyline_auth_csrf_refusals_total", "proof" => proof).increment(1);
    ApiError::CsrfRejected(why.to_owned())
}

/// The origin the request was addressed to: its scheme (as a TLS-terminating proxy reports it
/// with `Forwarded` or `X-Forwarded-Proto`, else the connection's) and its `Host`. The host is
/// the one the browser addressed, never a forwarded one.
fn own_origin(req: &HttpRequest) -> Option<String> {
    let host = match req.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.to_owned(),
        None => req.uri().authority()?.as_str().to_owned(),
    };
    normalise(&format!("{}://{host}", req.connection_info().scheme()))
}

/// `scheme://host[:port]` in lower case without a default port, as browsers serialise an
/// origin; `None` for anything else (`null`, a path, an empty host).
fn normalise(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    let well_formed = !authority.is_empty()
        && !authority.starts_with(':')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    well_formed.then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

    fn csrf(allowed: &str) -> Csrf {
        Csrf::new(&SECRET.into(), allowed).unwrap()
    }

    fn post(host: &str, origin: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::post().insert_header((header::HOST, host));
        if let Some(origin) = origin {
            req = req.insert_header((header::ORIGIN, origin));
        }
        req.to_http_request()
    }

    #[test]
    fn origins_are_compared_as_browsers_serialise_them() {
        assert_eq!(
            normalise("HTTP://Example.COM:80").as_deref(),
            Some("http://example.com")
        );
        assert_eq!(
            normalise("https://a.example:443").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            normalise("https://a.example:8443").as_deref(),
            Some("https://a.example:8443")
        );
        assert_eq!(
            normalise("http://[::1]:8080").as_deref(),
            Some("http://[::1]:8080")
        );
        for bad in [
            "null",
            "",
            "https://",
            "ftp://a.example",
            "https://a.example/x",
            "a.example",
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_own_origin_and_configured_ones_pass() {
        let csrf = csrf("https://app.example, ,null");
        let own = post("api.example:8080", Some("http://api.example:8080"));
        assert!(csrf.check_origin(&own).is_ok());
        let listed = post("api.example", Some("https://app.example"));
        assert!(csrf.check_origin(&listed).is_ok());
        for origin in [
            None,
            Some("null"),
            Some("http://evil.example"),
            Some("http://api.example"),
        ] {
            assert!(
                matches!(
                    csrf.check_origin(&post("api.example:8080", origin)),
                    Err(ApiError::CsrfRejected(_))
                ),
                "{origin:?}"
            );
        }
        let twice = TestRequest::post()
            .insert_header((header::HOST, "api.example"))
            .append_header((header::ORIGIN, "http://api.example"))
            .append_header((header::ORIGIN, "http://api.example"))
            .to_http_request();
        assert!(csrf.check_origin(&twice).is_err());
    }

    #[test]
    fn a_token_verifies_for_its_own_session_only() {
        let csrf = csrf("");
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let token = csrf.token(mine);
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert!(csrf.verifies(mine, &token));
        assert!(!csrf.verifies(theirs, &token));
        assert!(!csrf.verifies(mine, &token[..token.len() - 1]));
        assert!(!csrf.verifies(mine, "not base64!"));
        let other = Csrf::new(&"another-secret-also-32-bytes-long!!".into(), "").unwrap();
        assert!(
            !other.verifies(mine, &token),
            "the key comes from the secret"
        );
    }
}
