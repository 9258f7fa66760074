//! Turns extractor failures (bad JSON, bad query strings, bad path segments, bodies over the
//! limit) into problem+json answers, and reads the small headers commands and queries share.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, HttpMessage, HttpRequest};

use super::error::ApiError;
use super::middleware::RequestId;

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
