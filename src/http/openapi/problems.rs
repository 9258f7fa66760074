//! The problem+json answers operations list in their `responses(...)`, in the sets handlers
//! fail in: what reading a JSON body can refuse, what every command can refuse, what every
//! read-model query can refuse, and the single statuses a route adds to those. Each answer's
//! example is made by the code that sends it ([`problem_body`]), so the two cannot disagree;
//! every set also carries the 500 that any route gives when something unexpected fails.

use std::collections::BTreeMap;

use actix_web::ResponseError;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder, Responses};
use utoipa::openapi::{Ref, RefOr};
use utoipa::IntoResponses;

use crate::http::error::{problem_body, ApiError, FieldProblem};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem answer: `err`'s status, `meaning` (true on any route), an example body and the
/// headers [`crate::http::error::problem_response`] adds.
fn problem(err: ApiError, meaning: &str) -> (String, RefOr<Response>) {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .example(Some(problem_body(&err)))
        .build();
    let mut response = ResponseBuilder::new()
        .description(meaning)
        .content(PROBLEM_JSON, content);
    let header = |description: &str| HeaderBuilder::new().description(Some(description)).build();
    match err {
        ApiError::Unauthenticated(_) => {
            response = response.header("WWW-Authenticate", header("Always `Bearer`."));
        }
        ApiError::Unavailable { .. }
        | ApiError::TooManyRequests { .. }
        | ApiError::OutcomeUnknown { .. } => {
            response = response.header("Retry-After", header("Seconds to wait before retrying."));
        }
        ApiError::PreconditionFailed { .. } => {
            response = response.header("ETag", header("The aggregate's current version, quoted."));
        }
        _ => {}
    }
    (
        err.status_code().as_u16().to_string(),
        response.build().into(),
    )
}

fn bad_request() -> (String, RefOr<Response>) {
    problem(
        ApiError::BadRequest("X-Min-Position must be a non-negative integer".into()),
        "The request could not be read: malformed JSON, or a malformed `Idempotency-Key`, \
         `If-Match`, `X-Min-Position` or `Last-Event-ID` header.",
    )
}

fn unauthenticated() -> (String, RefOr<Response>) {
    problem(
        ApiError::Unauthenticated("an access token is required".into()),
        "No valid credentials: the access token (or signature) is missing, malformed or expired.",
    )
}

fn forbidden() -> (String, RefOr<Response>) {
    problem(
        ApiError::Forbidden("this needs the admin role".into()),
        "Authenticated, but not allowed: a role is missing, or the caller is not the party \
         who may act.",
    )
}

/// What a 403 `csrf-rejected` means, wherever it may be answered.
const CSRF_REJECTED: &str = "`csrf-rejected`: the request came with the session cookie (no \
    bearer token), and its `Origin` header is missing, `null` or not this server's own origin \
    (nor one of `http.allowed_origins`), or its `X-CSRF-Token` is missing or not the \
    session's. Nothing was done.";

fn csrf_refusal() -> ApiError {
    ApiError::CsrfRejected("this origin may not send requests with the session cookie".into())
}

/// Adds the CSRF refusal to an operation a cookie session may call to change something: as
/// its 403 when it has none, else beside the 403 it has (both examples kept, named by type).
pub fn add_csrf_refusal(responses: &mut Responses) {
    let Some(RefOr::T(forbidden)) = responses.responses.get_mut("403") else {
        responses
            .responses
            .extend([problem(csrf_refusal(), CSRF_REJECTED)]);
        return;
    };
    forbidden.description = format!("{} Or {CSRF_REJECTED}", forbidden.description);
    if let Some(RefOr::T(content)) = forbidden.content.get_mut(PROBLEM_JSON) {
        let example = |value| RefOr::T(ExampleBuilder::new().value(Some(value)).build());
        if let Some(existing) = content.example.take() {
            let kind = existing["type"].as_str().and_then(|t| t.rsplit('/').next());
            let name = kind.unwrap_or("forbidden").to_owned();
            content.examples.insert(name, example(existing));
        }
        content.examples.insert(
            "csrf-rejected".into(),
            example(problem_body(&csrf_refusal())),
        );
    }
}

fn not_found() -> (String, RefOr<Response>) {
    problem(
        ApiError::NotFound("no such task".into()),
        "No such resource, or one the caller may not see (the two are not told apart); also \
         a path segment that is not a valid id.",
    )
}

fn conflict() -> (String, RefOr<Response>) {
    problem(
        ApiError::conflict("the task is not queued"),
        "The current state does not allow this (`state-conflict`, `insufficient-funds`, \
         ...), another writer got there first (`concurrency-conflict`), or a request with \
         the same `Idempotency-Key` is still running (`request-in-progress`).",
    )
}

fn precondition_failed() -> (String, RefOr<Response>) {
    problem(
        ApiError::PreconditionFailed {
            aggregate: "Bounty",
            current_version: 4,
        },
        "`precondition-failed`: the aggregate is not at a version `If-Match` named (or does \
         not exist); nothing was done. `current_version` (and the `ETag` header) names the \
         version it is at. Told only to a caller the command is open to: one who may not act \
         hears 403 or 404 as without the header.",
    )
}

/// 304 to a read whose `If-None-Match` named the tag it would answer.
fn not_modified() -> (String, RefOr<Response>) {
    let header = |description: &str| HeaderBuilder::new().description(Some(description)).build();
    let response = ResponseBuilder::new()
        .description(
            "Not modified: `If-None-Match` named the tag this answer would carry. No body; the \
             copy the client holds is current.",
        )
        .header(
            "ETag",
            header("The answer's entity tag, as a 200 would carry it."),
        )
        .header("Cache-Control", header("As a 200 would carry it."))
        .build();
    ("304".to_owned(), response.into())
}

fn too_large() -> (String, RefOr<Response>) {
    problem(
        ApiError::PayloadTooLarge("the body is larger than 262144 bytes".into()),
        "The body is larger than the configured limit.",
    )
}

fn not_json() -> (String, RefOr<Response>) {
    problem(
        ApiError::UnsupportedMediaType("send the body as application/json".into()),
        "The body is not sent as `application/json`, or is sent compressed \
         (`Content-Encoding`), which is refused before it is read.",
    )
}

fn invalid() -> (String, RefOr<Response>) {
    problem(
        ApiError::Invalid {
            detail: "amount: must be greater than 0".into(),
            fields: vec![FieldProblem {
                field: "amount".into(),
                message: "must be greater than 0".into(),
            }],
        },
        "Well-formed but invalid: a value out of range, an unknown field, a bad query \
         string, an `Idempotency-Key` reused with a different request, or an \
         `X-Min-Position` past the newest event. `errors` names the offending fields where it \
         can.",
    )
}

fn unavailable() -> (String, RefOr<Response>) {
    problem(
        ApiError::Unavailable {
            detail: "the tasks read model has not reached position 42 yet".into(),
            retry_after: 1,
        },
        "The read model did not reach `X-Min-Position` in time, or the service is briefly \
         unavailable (its database restarting, an answer that took too long): retry after \
         `Retry-After` seconds (with the same `Idempotency-Key` for a command).",
    )
}

fn command_unavailable() -> (String, RefOr<Response>) {
    problem(
        ApiError::OutcomeUnknown { retry_after: 1 },
        "`outcome-unknown`: the command reached the event store and the answer was lost (a \
         connection cut after the commit, no answer in time), so it may or may not have been \
         carried out. Send it again with the same `Idempotency-Key`: the retry gets the \
         original answer if it was carried out, and carries it out once if it was not. Or \
         `unavailable`: the service is briefly unavailable and nothing was done. Either way, \
         retry after `Retry-After` seconds.",
    )
}

fn too_many() -> (String, RefOr<Response>) {
    problem(
        ApiError::TooManyRequests { retry_after: 2 },
        "Over a limit: commands per user, authentication requests per address, failed \
         logins per account, or open streams per user. Retry after `Retry-After` seconds.",
    )
}

fn internal() -> (String, RefOr<Response>) {
    problem(
        ApiError::internal(anyhow::anyhow!("hidden")),
        "Something unexpected failed; the cause is logged, never sent.",
    )
}

/// Declares response sets: unit types whose `IntoResponses` lists the given answers and 500.
macro_rules! answers {
    ($($(#[$doc:meta])* $name:ident = [$($answer:ident),+];)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$($answer(),)+ internal()])
            }
        }
    )+};
}

answers! {
    /// 400.
    BadRequest = [bad_request];
    /// 401: the route needs credentials.
    Unauthenticated = [unauthenticated];
    /// 403: the route checks a role or who the caller is.
    Forbidden = [forbidden];
    /// 404: the route names a resource in its path.
    NotFound = [not_found];
    /// 409.
    Conflict = [conflict];
    /// 412: the command reads `If-Match`.
    Expecting = [precondition_failed];
    /// 429: the route is rate limited.
    TooMany = [too_many];
    /// 422: the route reads a query string or validates values.
    Invalid = [invalid];
    /// What reading a `web::Json` body can refuse.
    JsonBody = [bad_request, too_large, not_json, invalid];
    /// What reading a body as bytes and parsing it in the handler (optional, or verified
    /// before it is parsed; no content type needed) can refuse; a body over the limit is
    /// answered as a problem by `guard::problem_errors`.
    RawJsonBody = [bad_request, too_large, not_json, invalid];
    /// What every command (`http::command::execute`) can refuse: no credentials, a bad or
    /// reused `Idempotency-Key`, a conflict, an outcome lost on the way back.
    Command = [bad_request, unauthenticated, conflict, invalid, too_many, command_unavailable];
    /// The webhook's unknown outcome (it is not a `Command`: no bearer token, no key header).
    OutcomeUnknown = [command_unavailable];
    /// What every read of a read model can refuse: no credentials, a bad `X-Min-Position` (or
    /// one past the newest event), a read model that did not catch up in time.
    Read = [bad_request, unauthenticated, invalid, unavailable];
}

/// 304: the read answers an `ETag` and honours `If-None-Match`.
pub struct NotModified;

impl IntoResponses for NotModified {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([not_modified()])
    }
}
