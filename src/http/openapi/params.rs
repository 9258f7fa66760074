//! Parameters many operations share, as types they list next to their own in
//! `params(...)`: the headers `http::extract` reads, and the ids in resource paths.

use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::Required;
use utoipa::IntoParams;

/// Declares `{id}` path parameters: unit types that say what the id is of.
macro_rules! path_ids {
    ($($name:ident = $description:literal;)+) => {$(
        #[doc = $description]
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                let uuid = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
                vec![ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some($description))
                    .schema(Some(uuid))
                    .build()]
            }
        }
    )+};
}

path_ids! {
    TaskId = "The task's id";
    BountyId = "The bounty's id";
    PaymentId = "The payment's id";
    NotificationId = "The notification's id";
    UserId = "The user's id";
}

/// An optional request header.
fn header(
    name: &str,
    description: &str,
    schema: ObjectBuilder,
    example: serde_json::Value,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .example(Some(example))
        .build()
}

/// `Idempotency-Key`, read by every command.
pub struct IdempotencyKey;

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[!-~]{1,200}$"));
        vec![header(
            "Idempotency-Key",
            "A client-chosen key (1-200 visible ASCII characters): the command runs at most \
             once per caller and key, and a retry gets the first answer again. The same key \
             with a different request is refused with 422.",
            schema,
            json!("5f3d1c2e-create-task"),
        )]
    }
}

/// `If-Match`, read by every command on an aggregate the request names.
pub struct IfMatch;

impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(IF_MATCH_PATTERN));
        vec![header(
            "If-Match",
            "Only if nothing changed since you looked: the aggregate's version as a read's \
             `ETag` or a command's `version` gave it, quoted (`\"3\"`); several, \
             comma-separated, for any of them; or `*` for any version of an aggregate that \
             exists. If the aggregate is at another version (or does not exist) the command \
             is refused with 412 naming the current version, and nothing is done. A weak tag \
             (`W/\"3\"`) never matches (If-Match compares strongly); anything else that is \
             not a quoted non-negative integer is refused with 400. A retry under the same \
             `Idempotency-Key` gets the first answer, whatever this header says.",
            schema,
            json!("\"3\""),
        )]
    }
}

/// The `If-Match` values [`crate::http::extract::if_match`] reads (RFC 9110 lists, with
/// optional whitespace around the commas).
const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"[0-9]{1,18}"([ \t]*,[ \t]*(W/)?"[0-9]{1,18}")*)$"#;

/// `If-None-Match`, read by every read that answers an `ETag`.
pub struct IfNoneMatch;

impl IntoParams for IfNoneMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new().schema_type(Type::String);
        vec![header(
            "If-None-Match",
            "The `ETag` of the copy you hold (or several, comma-separated, or `*`): if the \
             answer would carry the same tag it is 304 Not Modified, without a body. Tags \
             compare weakly, so `W/\"3\"` and `\"3\"` are the same. A value that is not a list \
             of entity tags matches nothing.",
            schema,
            json!("\"3\""),
        )]
    }
}

/// What a browser session's refresh and logout read instead of a body: the refresh cookie,
/// and the CSRF token that must come with it.
pub struct RefreshCookie;

impl IntoParams for RefreshCookie {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let text = || ObjectBuilder::new().schema_type(Type::String);
        vec![
            ParameterBuilder::new()
                .name(crate::auth::cookies::REFRESH)
                .parameter_in(ParameterIn::Cookie)
                .required(Required::False)
                .description(Some(
                    "A browser session's refresh token, set by a sign-in with \
                     `\"session\": \"cookie\"` (`HttpOnly`, sent to `/v1/auth` only). Read \
                     when the body names no `refresh_token`; it needs `X-CSRF-Token` and the \
                     page's own `Origin`.",
                ))
                .schema(Some(text()))
                .build(),
            header(
                "X-CSRF-Token",
                "The browser session's CSRF token (the sign-in answered it; the \
                 `__Host-bl_csrf` cookie holds it): required with the refresh cookie, with an \
                 `Origin` header naming this server's origin (or one of \
                 `http.allowed_origins`). Without both, or with a token of another session, \
                 the answer is 403 `csrf-rejected` and nothing changes.",
                text(),
                json!("q1vU7m0cW8Jd3nZ5yT2bXkR4fA6sE9hL0pG1iC3oN8w"),
            ),
        ]
    }
}

/// `X-Min-Position`, read by every query of a read model.
pub struct MinPosition;

impl IntoParams for MinPosition {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0));
        vec![header(
            "X-Min-Position",
            "Read your writes: the `position` a command answered. The query waits (bounded) \
             until its read model has applied it, and answers 503 with `Retry-After` if it \
             cannot, never stale data. A position past the newest event is refused (422).",
            schema,
            json!(42),
        )]
    }
}

/// `{queue}`: a queue's name.
pub struct QueuePath;

impl IntoParams for QueuePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![ParameterBuilder::new()
            .name("queue")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The queue's name"))
            .schema(Some(super::values::queue()))
            .build()]
    }
}

/// `{type}/{id}` of `/v1/audit/aggregates`: the type is one of those the store holds.
pub struct AggregatePath;

impl IntoParams for AggregatePath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let kind = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::audit::state::AGGREGATE_TYPES));
        vec![
            ParameterBuilder::new()
                .name("type")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The aggregate's type"))
                .schema(Some(kind))
                .build(),
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(
                    "The aggregate's id (a wallet's and an inbox's is their owner's user id)",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}
