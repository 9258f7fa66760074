//! The one error type of the HTTP edge. Every refusal is an RFC 9457 problem+json answer with a
//! stable `type`; every unexpected fault is logged with its cause and answered with a 500 whose
//! body says nothing about it.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// One offending field of a request, for validation problems.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldProblem {
    #[schema(example = "amount")]
    pub field: String,
    #[schema(example = "must be greater than 0")]
    pub message: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request cannot be read at all (malformed JSON, bad header).
    BadRequest(String),
    /// 401: no valid credentials.
    Unauthenticated(String),
    /// 403: authenticated, but not allowed.
    Forbidden(String),
    /// 403: a request carried the session cookie but not the proof that this server's own
    /// page sent it (its `Origin`, and an `X-CSRF-Token` of that session); nothing was done.
    CsrfRejected(String),
    /// 404: no such resource (or one the caller may not know about).
    NotFound(String),
    /// 405: the method is not served (TRACE).
    MethodNotAllowed(String),
    /// 404: no route has this method and path at all; told apart from [`ApiError::NotFound`]
    /// so that a client (or a test) can tell a wrong URL from a missing resource.
    NoSuchRoute(String),
    /// 409: a concurrency conflict or a command the current state does not allow.
    Conflict { kind: &'static str, detail: String },
    /// 412: the aggregate a command addresses is not at the version its `If-Match` named;
    /// nothing was done. The answer names the current version.
    PreconditionFailed {
        aggregate: &'static str,
        current_version: i64,
    },
    /// 413: the body is larger than allowed.
    PayloadTooLarge(String),
    /// 415: not JSON.
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid; names the offending fields where it can.
    Invalid {
        detail: String,
        fields: Vec<FieldProblem>,
    },
    /// 429: too many requests; retry after the given seconds.
    TooManyRequests { retry_after: u64 },
    /// 503: a dependency is not ready or a read could not catch up in time.
    Unavailable { detail: String, retry_after: u64 },
    /// 503: the command was sent to the event store and its answer was lost, so it may or may
    /// not have been carried out; a retry with the same Idempotency-Key gets its real answer.
    OutcomeUnknown { retry_after: u64 },
    /// 500: anything unexpected. The cause is logged, never sent.
    Internal(anyhow::Error),
}

impl ApiError {
    /// A fault on our side: 500, unless the database was only out of reach (restarting,
    /// connections cut), which a retry may well get past: then 503 with Retry-After.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        if err.chain().any(is_unknown_outcome) {
            tracing::warn!(error = format!("{err:#}"), "command outcome unknown");
            return ApiError::OutcomeUnknown { retry_after: 1 };
        }
        if err.chain().any(is_unreachable) {
            tracing::warn!(error = format!("{err:#}"), "database unreachable");
            return ApiError::Unavailable {
                detail: "the service is briefly unavailable; retry shortly".into(),
                retry_after: 1,
            };
        }
        if err.chain().any(is_unstorable_text) {
            return ApiError::invalid_field(
                "request",
                "must not contain the character U+0000, which cannot be stored",
            );
        }
        ApiError::Internal(err)
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        ApiError::Invalid {
            detail: format!("{field}: {message}"),
            fields: vec![FieldProblem { field, message }],
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            kind: "state-conflict",
            detail: detail.into(),
        }
    }

    /// The stable problem type (a URI reference) and title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "The request could not be read"),
            ApiError::Unauthenticated(_) => ("unauthenticated", "Authentication required"),
            ApiError::Forbidden(_) => ("forbidden", "Not allowed"),
            ApiError::CsrfRejected(_) => ("csrf-rejected", "Cross-site request refused"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            ApiError::NoSuchRoute(_) => ("no-such-route", "No such route"),
            ApiError::Conflict { kind, .. } => (kind, "Conflict"),
            ApiError::PreconditionFailed { .. } => ("precondition-failed", "Precondition failed"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::Invalid { .. } => ("validation", "The request is invalid"),
            ApiError::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            ApiError::Unavailable { .. } => ("unavailable", "Temporarily unavailable"),
            ApiError::OutcomeUnknown { .. } => ("outcome-unknown", "Outcome unknown"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
        }
    }

    /// Whether the same request could succeed if simply sent again (so an idempotent retry
    /// must not be answered from a stored copy of this error).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Internal(_)
                | ApiError::Unavailable { .. }
                | ApiError::OutcomeUnknown { .. }
                | ApiError::TooManyRequests { .. }
                | ApiError::Conflict {
                    kind: "concurrency-conflict" | "request-in-progress",
                    ..
                }
        )
    }

    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest(d)
            | ApiError::Unauthenticated(d)
            | ApiError::Forbidden(d)
            | ApiError::CsrfRejected(d)
            | ApiError::NotFound(d)
            | ApiError::MethodNotAllowed(d)
            | ApiError::NoSuchRoute(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::UnsupportedMediaType(d) => d.clone(),
            ApiError::Conflict { detail, .. }
            | ApiError::Invalid { detail, .. }
            | ApiError::Unavailable { detail, .. } => detail.clone(),
            ApiError::TooManyRequests { retry_after } => {
                format!("slow down; retry after {retry_after} s")
            }
            ApiError::PreconditionFailed {
                aggregate,
                current_version,
            } => format!(
                "the {} is at version {current_version}, not one If-Match named; nothing was \
                 done: read it again, and send the command again if it still applies",
                aggregate.to_lowercase()
            ),
            ApiError::OutcomeUnknown { .. } => "the command reached the event store but its \
                answer was lost, so it may or may not have been carried out; send it again \
                with the same Idempotency-Key to get its real answer (it will not act twice)"
                .to_owned(),
            ApiError::Internal(_) => {
                "something went wrong on our side; it has been logged".to_owned()
            }
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Internal(e) => write!(f, "internal: {e:#}"),
            other => write!(f, "{}: {}", other.kind().0, other.detail()),
        }
    }
}

/// An RFC 9457 problem document: every refusal and every fault is answered with one, as
/// `application/problem+json`.
#[derive(Serialize, ToSchema)]
pub struct Problem<'a> {
    /// A stable URI naming the kind of problem; clients branch on it, not on `detail`.
    #[serde(rename = "type")]
    #[schema(example = "https://bountyline.dev/problems/validation")]
    kind: String,
    #[schema(example = "The request is invalid")]
    title: &'a str,
    /// The HTTP status, repeated.
    #[schema(example = 422)]
    status: u16,
    /// What went wrong with this request, for people.
    #[schema(example = "amount: must be greater than 0")]
    detail: String,
    /// For validation problems: the offending fields, where they are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldProblem]>,
    /// For `precondition-failed`: the version the aggregate is at (also its `ETag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 4)]
    current_version: Option<i64>,
}

/// The problem+json document for an error (what [`problem_response`] sends).
pub fn problem_body(err: &ApiError) -> serde_json::Value {
    let (kind, title) = err.kind();
    let errors = match err {
        ApiError::Invalid { fields, .. } if !fields.is_empty() => Some(fields.as_slice()),
        _ => None,
    };
    let current_version = match err {
        ApiError::PreconditionFailed {
            current_version, ..
        } => Some(*current_version),
        _ => None,
    };
    let body = Problem {
        kind: format!("https://bountyline.dev/problems/{kind}"),
        title,
        status: err.status_code().as_u16(),
        detail: err.detail(),
        errors,
        current_version,
    };
    serde_json::to_value(body).unwrap_or_default()
}

/// Builds a problem+json response; also used by the JSON/query/path extractor error handlers.
pub fn problem_response(err: &ApiError) -> HttpResponse {
    let status = err.status_code();
    let body = problem_body(err);
    let mut res = HttpResponse::build(status);
    res.content_type("application/problem+json");
    match err {
        ApiError::TooManyRequests { retry_after }
        | ApiError::Unavailable { retry_after, .. }
        | ApiError::OutcomeUnknown { retry_after } => {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        ApiError::Unauthenticated(_) => {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        ApiError::PreconditionFailed {
            current_version, ..
        } => {
            res.insert_header((header::ETAG, format!("\"{current_version}\"")));
        }
        _ => {}
    }
    let mut res = res.json(body);
    super::guard::default_headers(res.headers_mut());
    res
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::CsrfRejected(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoSuchRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::OutcomeUnknown { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            // Within the request's span, so the log line carries its request id.
            ApiError::Unauthenticated(detail)
            | ApiError::Forbidden(detail)
            | ApiError::CsrfRejected(detail) => {
                tracing::info!(status = self.status_code().as_u16(), %detail, "access refused")
            }
            _ => {}
        }
        problem_response(self)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

/// Whether Postgres refused a text for a character it cannot hold (U+0000, in `text` as
/// "invalid byte sequence", in `jsonb` as "unsupported Unicode escape sequence"): the request's
/// fault, whichever field carried it, so a 422 rather than a 500.
fn is_unstorable_text(cause: &(dyn std::error::Error + 'static)) -> bool {
    const INVALID_BYTE_SEQUENCE: &str = "22021";
    const UNTRANSLATABLE_CHARACTER: &str = "22P05";
    cause
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == INVALID_BYTE_SEQUENCE || code == UNTRANSLATABLE_CHARACTER)
}

/// Whether `cause` is an append whose group was sent and whose answer was lost.
fn is_unknown_outcome(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<crate::store::AppendError>()
        .is_some_and(|e| e.outcome() == crate::store::Outcome::Unknown)
}

/// Whether `cause` says the database could not be reached, rather than that it refused.
fn is_unreachable(cause: &(dyn std::error::Error + 'static)) -> bool {
    let Some(e) = cause.downcast_ref::<sqlx::Error>() else {
        return cause.downcast_ref::<std::io::Error>().is_some();
    };
    match e {
        // A connection that answered nonsense (one closed by something on the way as it was
        // opened reads as an answer of zeros): the wire is broken, not the request.
        sqlx::Error::Protocol(_)
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 (connection exception), 57P01..03 (shutting down, cannot connect now),
        // 53300 (too many connections).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl From<bountyline_domain::values::InvalidValue> for ApiError {
    fn from(e: bountyline_domain::values::InvalidValue) -> Self {
        ApiError::invalid_field(e.field, e.message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod unreachable_tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_behind_context_is_a_503() {
        let err = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("CreateTask");
        assert!(matches!(
            ApiError::internal(err),
            ApiError::Unavailable { .. }
        ));
        let garbled = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(matches!(
            ApiError::internal(garbled),
            ApiError::Unavailable { .. }
        ));
        let plain = anyhow::anyhow!("something else");
        assert!(matches!(ApiError::internal(plain), ApiError::Internal(_)));
    }
}
