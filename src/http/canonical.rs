//! One path for everyone: the first thing the edge does to a request is to put its path in
//! the form the router matches (RFC 3986 normalisation), so every guard and limit after it
//! sees the same path the router routes.
//!
//! The router decodes percent-encoded unreserved characters before it matches (`/v1/%61uth/login`
//! is routed as `/v1/auth/login`), while a guard reading the raw path saw something else: an
//! attacker past the login limit sent `%61` and was never limited. So here:
//! - percent-encoded unreserved characters (letters, digits, `-`, `.`, `_`, `~`) are decoded,
//!   and every other escape is kept with upper-case hex;
//! - runs of slashes become one (`/v1//auth/login` is `/v1/auth/login`);
//! - a dot segment (`.` or `..`, plain or encoded) is refused with 400: nothing here is a file
//!   tree, and resolving one would only give a second spelling of another path.
//!
//! Request bodies sent compressed (`Content-Encoding` other than `identity`) are refused with
//! 415 before anything reads them: a few kilobytes of gzip can inflate to gigabytes, and the
//! body limit is only checked after a chunk was inflated.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_ENCODING;
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::Error;

use super::error::{problem_response, ApiError};

/// Why a path cannot be made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    DotSegment,
}

/// The canonical form of `path`, or `None` when it already is.
pub fn canonical(path: &str) -> Result<Option<String>, Refused> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let decoded = hi << 4 | lo;
                if is_unreserved(decoded) {
                    out.push(char::from(decoded));
                } else {
                    out.push('%');
                    out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                    out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
                }
                i += 3;
                continue;
            }
        }
        if b == b'/' && out.ends_with('/') {
            i += 1;
            continue;
        }
        // The path is ASCII (a URI's); anything else is kept as it came.
        out.push(char::from(b));
        i += 1;
    }
    if out
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(Refused::DotSegment);
    }
    Ok((out != path).then_some(out))
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Puts the request's path in canonical form (or refuses it), and refuses compressed bodies.
pub async fn canonical_request(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let refusal = match canonical(req.path()) {
        Err(Refused::DotSegment) => Some(ApiError::BadRequest(
            "the path must not contain `.` or `..` segments".into(),
        )),
        Ok(Some(path)) => match with_path(req.uri(), &path) {
            Some(uri) => {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
                None
            }
            None => Some(ApiError::BadRequest("the path cannot be read".into())),
        },
        Ok(None) => None,
    };
    let compressed = req
        .headers()
        .get_all(CONTENT_ENCODING)
        .any(|value| !value.as_bytes().eq_ignore_ascii_case(b"identity"));
    let refusal = refusal.or_else(|| {
        compressed.then(|| {
            ApiError::UnsupportedMediaType(
                "request bodies must not be compressed (Content-Encoding); send them as they are"
                    .into(),
            )
        })
    });
    if let Some(refusal) = refusal {
        return Ok(req.into_response(problem_response(&refusal)));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// `uri` with its path replaced by `path` (query kept).
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_escapes_are_decoded_and_slashes_merged() {
        assert_eq!(canonical("/v1/auth/login"), Ok(None));
        let same = |path: &str| canonical(path).map(|c| c.unwrap_or_else(|| path.to_owned()));
        for spelling in [
            "/v1/%61uth/login",
            "/v1/%61%75%74%68/login",
            "/v1//auth/login",
            "//v1/auth///login",
            "/%76%31/auth/login",
        ] {
            assert_eq!(
                same(spelling),
                Ok("/v1/auth/login".to_owned()),
                "{spelling}"
            );
        }
        assert_eq!(same("/openapi%2Ejson"), Ok("/openapi.json".to_owned()));
        assert_eq!(same("/openapi%2ejson"), Ok("/openapi.json".to_owned()));
    }

    #[test]
    fn reserved_escapes_stay_escaped_in_upper_case() {
        assert_eq!(
            canonical("/v1/tasks/a%2fb"),
            Ok(Some("/v1/tasks/a%2Fb".into()))
        );
        assert_eq!(canonical("/v1/tasks/a%2Fb"), Ok(None));
        assert_eq!(canonical("/v1/tasks/%zz"), Ok(None), "not an escape");
        assert_eq!(canonical("/v1/tasks/%4"), Ok(None), "cut short");
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for path in [
            "/v1/tasks/../auth/login",
            "/v1/./auth/login",
            "/v1/%2E%2E/auth/login",
            "/v1/%2e./auth/login",
            "/v1/auth/login/..",
            "/v1/auth/.",
        ] {
            assert_eq!(canonical(path), Err(Refused::DotSegment), "{path}");
        }
        assert_eq!(
            canonical("/v1/a..b/.x"),
            Ok(None),
            "dots inside a segment are a name"
        );
    }
}
