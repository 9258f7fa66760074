//! Turns extractor failures (bad JSON, bad query strings, bad path segments, bodies over the
//! limit) into problem+json answers, and reads the small headers commands and queries share.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest};

use super::error::ApiError;
use super::middleware::RequestId;
use crate::commands::Expected;

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            let api = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => {
                    ApiError::PayloadTooLarge(format!("the body is larger than {limit} bytes"))
                }
                JsonPayloadError::ContentType => {
                    ApiError::UnsupportedMediaType("send the body as application/json".to_owned())
                }
                JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::Invalid {
                    detail: e.to_string(),
                    fields: Vec::new(),
                },
                JsonPayloadError::Deserialize(e) => {
                    ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
                }
                other => ApiError::BadRequest(other.to_string()),
            };
            api.into()
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::Invalid {
            detail: format!("query string: {detail}"),
            fields: Vec::new(),
        }
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::NotFound(format!("no such resource ({detail})")).into()
    })
}

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.id.clone())
        .unwrap_or_default()
}

/// The caller's own `X-Request-Id`, when it sent a sane one (never a correlation id).
pub fn client_request_id(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<RequestId>()
        .and_then(|r| r.client.clone())
}

/// `Idempotency-Key`: 1–200 visible ASCII characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1-200 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

/// `If-Match` on a command (RFC 9110 13.1.1): `*`, or a list of entity tags, ours being
/// `"<version>"`. A weak tag (`W/"3"`) is well formed but never matches, If-Match comparing
/// strongly; a tag that is not a quoted non-negative integer (we never send one) is refused.
pub fn if_match(req: &HttpRequest) -> Result<Option<Expected>, ApiError> {
    let malformed = || {
        ApiError::BadRequest(
            "If-Match must be *, or one or more quoted versions such as \"3\" (comma-separated)"
                .into(),
        )
    };
    let mut lines = req.headers().get_all(header::IF_MATCH).peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let mut elements = Vec::new();
    for line in lines {
        let line = line.to_str().map_err(|_| malformed())?;
        elements.extend(line.split(',').map(str::trim).filter(|e| !e.is_empty()));
    }
    if elements == ["*"] {
        return Ok(Some(Expected::Any));
    }
    if elements.is_empty() {
        return Err(malformed());
    }
    let mut versions = Vec::new();
    for element in elements {
        let (weak, tag) = match element.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, element),
        };
        let digits = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(malformed)?;
        // A version too large for any aggregate is well formed and matches none.
        if let (false, Ok(version)) = (weak, digits.parse::<i64>()) {
            versions.push(version);
        }
    }
    Ok(Some(Expected::OneOf(versions)))
}

/// `X-Min-Position`: the position a query must reflect before it answers.
pub fn min_position(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = req.headers().get("x-min-position") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("X-Min-Position must be a non-negative integer".into()))
}

/// A JSON body that may be left out entirely (all its fields are optional): an empty body, or
/// a JSON `null`, reads as the default; anything else must be the JSON object `T` expects.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    let text = body.trim_ascii();
    if text.is_empty() || text == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(text).map_err(|e| {
        if e.is_data() {
            ApiError::Invalid {
                detail: e.to_string(),
                fields: Vec::new(),
            }
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse(values: &[&str]) -> Result<Option<Expected>, ApiError> {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header((header::IF_MATCH, *v));
        }
        if_match(&req.to_http_request())
    }

    #[test]
    fn if_match_reads_versions_any_and_lists_and_refuses_the_rest() {
        assert!(matches!(parse(&[]), Ok(None)));
        assert!(matches!(parse(&["*"]), Ok(Some(Expected::Any))));
        assert_eq!(parse(&["\"3\""]).ok(), Some(Some(Expected::OneOf(vec![3]))));
        assert_eq!(
            parse(&["\"3\" , \"5\"", "\"8\""]).ok(),
            Some(Some(Expected::OneOf(vec![3, 5, 8])))
        );
        assert_eq!(
            parse(&["W/\"3\""]).ok(),
            Some(Some(Expected::OneOf(Vec::new()))),
            "a weak tag never matches"
        );
        assert_eq!(
            parse(&["\"99999999999999999999999\""]).ok(),
            Some(Some(Expected::OneOf(Vec::new())))
        );
        for bad in [
            "3", "\"-1\"", "\"abc\"", "\"\"", "", "*, \"3\"", "\"3", "W/3",
        ] {
            assert!(
                matches!(parse(&[bad]), Err(ApiError::BadRequest(_))),
                "{bad:?} is refused"
            );
        }
    }
}
