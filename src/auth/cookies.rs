//! The cookies of a browser session (`"session": "cookie"` at sign-in): tokens a page's
//! scripts never hold.
//!
//! - `__Host-bl_session`: the access token, `HttpOnly`, for every path; it lives as long as
//!   the token.
//! - `__Secure-bl_refresh`: the refresh token, `HttpOnly`, sent only to `/v1/auth`, so that it
//!   travels with nothing but a refresh or a logout.
//! - `__Host-bl_csrf`: the session's CSRF token (`auth::csrf`), readable by the page so that
//!   a reloaded page finds it; alone it authenticates nothing.
//!
//! All are `Secure` and `SameSite=Strict`: never sent over plain HTTP (browsers take
//! `localhost` as secure) nor with a request another site starts. The `__Host-` prefix makes a
//! browser refuse the cookie unless it is host-only, `Secure` and for `/`, so no neighbouring
//! subdomain can plant one. Values are base64url and JWT text, which need no quoting.

use actix_web::http::header;
use actix_web::HttpRequest;

pub const SESSION: &str = "__Host-bl_session";
pub const REFRESH: &str = "__Secure-bl_refresh";
pub const CSRF: &str = "__Host-bl_csrf";

/// The path the refresh cookie is sent to.
const REFRESH_PATH: &str = "/v1/auth";

/// The value of the cookie `name` the request carries, if any (the first, if several have the
/// name: the browser puts the one of the longest path first).
pub fn read(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether the request carries any cookie of a browser session.
pub fn any(req: &HttpRequest) -> bool {
    [SESSION, REFRESH, CSRF]
        .iter()
        .any(|name| read(req, name).is_some())
}

/// The three `Set-Cookie` values of a signed-in browser: the access token for `access_ttl`
/// seconds, the refresh token and the CSRF token for `refresh_ttl`.
pub fn set(
    access: &str,
    access_ttl: i64,
    refresh: &str,
    refresh_ttl: i64,
    csrf: &str,
) -> [String; 3] {
    [
        cookie(SESSION, access, true, "/", access_ttl),
        cookie(REFRESH, refresh, true, REFRESH_PATH, refresh_ttl),
        cookie(CSRF, csrf, false, "/", refresh_ttl),
    ]
}

/// The three `Set-Cookie` values that make a browser forget its session (logout). Each keeps
/// its attributes: a browser replaces a cookie only when name, path and prefix rules match.
pub fn cleared() -> [String; 3] {
    [
        cookie(SESSION, "", true, "/", 0),
        cookie(REFRESH, "", true, REFRESH_PATH, 0),
        cookie(CSRF, "", false, "/", 0),
    ]
}

fn cookie(name: &str, value: &str, http_only: bool, path: &str, max_age: i64) -> String {
    let http_only = if http_only { " HttpOnly;" } else { "" };
    format!(
        "{name}={value};{http_only} Secure; SameSite=Strict; Path={path}; Max-Age={}",
        max_age.max(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn cookies_are_written_with_the_attributes_the_contract_names() {
        let [session, refresh, csrf] = set("a.b.c", 900, "rt", 3600, "ct");
        assert_eq!(
            session,
            "__Host-bl_session=a.b.c; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=900"
        );
        assert_eq!(
            refresh,
            "__Secure-bl_refresh=rt; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; \
             Max-Age=3600"
        );
        assert_eq!(
            csrf,
            "__Host-bl_csrf=ct; Secure; SameSite=Strict; Path=/; Max-Age=3600"
        );
        assert!(cleared().iter().all(|c| c.ends_with("Max-Age=0")));
    }

    #[test]
    fn a_cookie_is_read_by_its_exact_name_from_any_cookie_header() {
        let req = TestRequest::default()
            .append_header((header::COOKIE, "x=1; __Host-bl_session_x=no"))
            .append_header((header::COOKIE, "__Host-bl_session=abc ; __Host-bl_csrf="))
            .to_http_request();
        assert_eq!(read(&req, SESSION).as_deref(), Some("abc"));
        assert_eq!(read(&req, CSRF), None, "an empty value is no cookie");
        assert_eq!(read(&req, REFRESH), None);
        assert!(any(&req));
        assert!(!any(&TestRequest::default().to_http_request()));
    }
}
