//! The OpenAPI 3.1 document, generated from the code: each handler's `#[utoipa::path]` and
//! the `ToSchema` derives of its DTOs and views, so that the document follows the code rather
//! than drifting from it. `tests/openapi.rs` checks it both ways against the routes
//! registered in `routes/`: a route missing from [`ApiDoc`]'s `paths(...)`, or a documented
//! one that no longer exists, fails the build.
//!
//! It is serialised once at start-up ([`Document`]) and served as bytes by
//! `routes/docs.rs`, next to Swagger UI.

pub mod links;
pub mod params;
pub mod problems;
pub mod values;

use actix_web::web::Bytes;
use links::Links;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::conditional::ETag;
use super::error::Problem;
use super::routes::{
    admin, audit_chain, audit_events, audit_state, auth, bounties, dashboard, docs, erasure,
    health, me, notifications, ops, payments, queues, stats, streams, tasks, wallets, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bountyline",
        version = env!("CARGO_PKG_VERSION"),
        description = "An event-sourced work marketplace: task queues, bounties with escrow, \
            wallets, notifications, live streams and an audit trail.\n\n\
            Commands answer `{id, version, position}`; send `X-Min-Position: <position>` on a \
            later read to see your write. Send `Idempotency-Key` on any command to make a \
            retry safe. Lists take `?limit=` and an opaque `?cursor=` and answer \
            `{items, next_cursor}`. Every error is `application/problem+json` (RFC 9457) \
            with a stable `type`.",
    ),
    paths(
        ops::live, ops::ready, ops::metrics, health::detailed,
        docs::openapi_json, docs::swagger_ui,
        dashboard::page, dashboard::page_slash, dashboard::file,
        stats::stats,
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all,
        queues::grant, queues::revoke,
        me::me, me::grant_role, me::remove_role, me::disable, me::enable, me::revoke_sessions,
        erasure::erase_me, erasure::erase_user,
        admin::parked_events, admin::flows,
        tasks::create, tasks::list, tasks::get, tasks::heartbeat, tasks::complete, tasks::fail,
        tasks::cancel, tasks::queues, tasks::claim,
        bounties::post, bounties::board, bounties::detail, bounties::apply, bounties::withdraw,
        bounties::accept, bounties::submit, bounties::approve, bounties::reject,
        bounties::cancel, bounties::dispute, bounties::resolve,
        wallets::balances, wallets::entries, wallets::withdraw, wallets::credit,
        payments::list, payments::get,
        notifications::list, notifications::mark_many, notifications::mark_one,
        webhooks::payments,
        streams::stream,
        audit_events::events, audit_events::reads,
        audit_state::aggregate_state, audit_state::event_causes,
        audit_chain::verify, audit_chain::heads, audit_chain::check_heads,
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes, &CookieSessions, &ParameterDescriptions, &Links, &Validators),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "users", description = "The caller's account; roles (admin)"),
        (name = "tasks", description = "Task queues: create, claim, heartbeat, finish"),
        (name = "bounties", description = "Bounties: post, apply, accept, submit, approve, \
            dispute"),
        (name = "wallets", description = "Balances, the ledger, withdrawals, credits"),
        (name = "payments", description = "Escrow payments of bounties"),
        (name = "notifications", description = "The caller's feed"),
        (name = "streams", description = "Live Server-Sent Events"),
        (name = "stats", description = "The platform's figures, for dashboards"),
        (name = "dashboard", description = "The live dashboard page"),
        (name = "webhooks", description = "Calls from the payment provider"),
        (name = "audit", description = "History, cause chains and tamper evidence (auditor \
            or admin)"),
        (name = "admin", description = "Operator views (admin)"),
        (name = "operations", description = "Health and metrics"),
        (name = "docs", description = "This document and Swagger UI"),
    ),
)]
pub struct ApiDoc;

/// Every operation of the document, whatever its method.
fn operations_mut(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// utoipa-gen 6 leaves out the doc comment of a query parameter whose schema comes from
/// `#[param(schema_with = ...)]` (`openapi::values`); such schemas carry their description, and
/// this lifts it onto the parameter, where readers and tools look for it.
struct ParameterDescriptions;

impl Modify for ParameterDescriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        for operation in operations_mut(openapi) {
            for parameter in operation.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else {
                    continue;
                };
                if parameter.description.is_some() {
                    continue;
                }
                parameter.description = match &parameter.schema {
                    Some(RefOr::T(Schema::Object(object))) => object.description.clone(),
                    Some(RefOr::T(Schema::OneOf(one_of))) => one_of.description.clone(),
                    _ => None,
                };
            }
        }
    }
}

/// The headers a conditional read answers with (`http::conditional`), on the success answer
/// of every operation that reads `If-None-Match`: one place, so that no read forgets them.
struct Validators;

impl Modify for Validators {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::RefOr;
        let header = |description: &str| {
            RefOr::T(HeaderBuilder::new().description(Some(description)).build())
        };
        for operation in operations_mut(openapi) {
            let conditional = operation.parameters.iter().flatten().any(|p| match p {
                RefOr::T(p) => p.name == "If-None-Match",
                RefOr::Ref(_) => false,
            });
            let Some(RefOr::T(ok)) = operation
                .responses
                .responses
                .get_mut("200")
                .filter(|_| conditional)
            else {
                continue;
            };
            ok.headers.insert(
                "ETag".into(),
                header(
                    "`\"<version>\"` of the aggregate read (what `If-Match` takes), or a weak \
                     `W/\"...\"` tag of a list page or of a read without a version; send it \
                     back as `If-None-Match`.",
                ),
            );
            ok.headers.insert(
                "Cache-Control".into(),
                header(
                    "`private, no-cache` for authenticated reads: a browser may keep the answer \
                     and must revalidate it before reuse; `public, max-age=60` for this \
                     document.",
                ),
            );
        }
    }
}

/// Wherever a bearer token is taken, a browser session's cookie is taken too
/// (`auth::extractor`): each such operation names it as another way in, with the CSRF token
/// beside it on operations that change something, which may then also answer 403
/// `csrf-rejected`. So do the operations that read the refresh cookie (they declare the
/// `X-CSRF-Token` header). One place, so that no route forgets it.
struct CookieSessions;

impl Modify for CookieSessions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            if let Some(read) = &mut item.get {
                add_cookie_session(read, false);
            }
            let writes = [
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for write in writes.into_iter().flatten() {
                add_cookie_session(write, true);
            }
        }
    }
}

fn add_cookie_session(operation: &mut utoipa::openapi::path::Operation, changes: bool) {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::RefOr;
    let none: [&str; 0] = [];
    let by_bearer = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|names| names.get("bearer").is_some())
    });
    if by_bearer {
        let mut cookie = SecurityRequirement::new("session_cookie", none);
        if changes {
            cookie = cookie.add("csrf_token", none);
        }
        operation.security.get_or_insert_with(Vec::new).push(cookie);
    }
    let reads_csrf_token = operation.parameters.iter().flatten().any(|p| match p {
        RefOr::T(p) => p.name == "X-CSRF-Token",
        RefOr::Ref(_) => false,
    });
    if changes && (by_bearer || reads_csrf_token) {
        problems::add_csrf_refusal(&mut operation.responses);
    }
}

/// The security schemes operations name in their `security(...)`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `/v1/auth/login` or `/v1/auth/refresh`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The same access token as a query parameter, for EventSource clients that \
                 cannot set headers; `/v1/streams/{topic}` only.",
            ))),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::cookies::SESSION,
                "A browser session's access token, set by `/v1/auth/login` with \
                 `\"session\": \"cookie\"` and by `/v1/auth/refresh` (`HttpOnly; Secure; \
                 SameSite=Strict`). Taken wherever a bearer token is, when no `Authorization` \
                 header is sent (that wins). On anything but GET it needs `csrf_token` and an \
                 `Origin` header naming this server's own origin (or one of \
                 `http.allowed_origins`); otherwise 403 `csrf-rejected`, and nothing changes.",
            ))),
        );
        components.add_security_scheme(
            "csrf_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::auth::csrf::HEADER_NAME,
                "The browser session's CSRF token: `csrf_token` of the sign-in's answer, also \
                 in the page-readable `__Host-bl_csrf` cookie. Bound to the session: a token \
                 of another session does not verify.",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator's `http.metrics_token`, when one is configured; \
                         without one `/metrics` is open.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "webhook_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Signature",
                "`sha256=<hex HMAC-SHA256 of the raw request body>` under the shared webhook \
                 secret.",
            ))),
        );
    }
}

/// The document as served: serialised once, shared by every worker, with its paths' methods
/// for the `Allow` header of a 405.
#[derive(Clone)]
pub struct Document {
    bytes: Bytes,
    etag: ETag,
    /// Each documented path as segments (`{param}` matches any one), and its methods.
    routes: Vec<(Vec<String>, Vec<String>)>,
}

impl Document {
    pub fn build() -> Result<Self, serde_json::Error> {
        let doc = ApiDoc::openapi();
        let paths = serde_json::to_value(&doc.paths)?;
        let routes = paths
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, item)| {
                let segments = template.split('/').map(str::to_owned).collect();
                let methods = ["get", "post", "put", "patch", "delete"]
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(|m| m.to_uppercase())
                    .collect();
                (segments, methods)
            })
            .collect();
        // Serialised from the document itself, so that its paths keep their order.
        let bytes = Bytes::from(serde_json::to_vec(&doc)?);
        Ok(Self {
            etag: ETag::of_bytes(&bytes),
            bytes,
            routes,
        })
    }

    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The document's strong tag: a digest of its bytes.
    pub fn etag(&self) -> ETag {
        self.etag.clone()
    }

    /// The methods documented for `path`; empty when no documented path matches it.
    pub fn methods_for(&self, path: &str) -> Vec<String> {
        let wanted: Vec<&str> = path.split('/').collect();
        self.routes
            .iter()
            .filter(|(segments, _)| {
                segments.len() == wanted.len()
                    && segments
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t == w || (t.starts_with('{') && !w.is_empty()))
            })
            .flat_map(|(_, methods)| methods.iter().cloned())
            .collect()
    }
}
