//! Conditional reads (API.md "Conventions"): every read of one resource answers an `ETag`,
//! every list page one too, and `If-None-Match` naming it answers 304 without a body.
//!
//! - A resource whose read model row carries its aggregate's version is tagged `"<version>"`
//!   (strong): the row changes only with the aggregate's own events, each of which moves the
//!   version, and the tag is what `If-Match` takes on the next command.
//! - A list page (or a read with no version) is tagged `W/"<position>-<digest>"`: the read
//!   model's checkpoint as stored, read *before* the rows (so the rows are at least that new,
//!   and an unchanged checkpoint means unchanged rows), and a digest of what shapes the answer
//!   (path, query string, caller and roles), so that another filter or cursor, or another
//!   caller, never shares a tag. Weak, since it says "the same answer" rather than "the same
//!   bytes" (a page computed twice may serialise alike yet is not promised byte for byte).
//!
//! Authenticated answers are `Cache-Control: private, no-cache` with `Vary: Authorization`:
//! a browser may keep them for its own user and must revalidate before reuse; no shared
//! cache may keep them. The 304 carries the same headers a 200 would (RFC 9110 15.4.5).
//! `X-Min-Position` is waited for before a tag is computed, so a 304 never stands for an
//! answer older than the position asked for.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bountyline_domain::Actor;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::error::{ApiError, ApiResult};
use super::signature::to_hex;

/// What an authenticated read may be cached as.
pub const PRIVATE: &str = "private, no-cache";

/// An answer's entity tag, as the `ETag` header carries it (quotes and `W/` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(String);

impl ETag {
    /// The strong tag of an aggregate at `version`.
    pub fn version(version: i64) -> Self {
        ETag(format!("\"{version}\""))
    }

    /// The strong tag of fixed bytes (a document served as it was built).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        ETag(format!("\"{}\"", to_hex(&Sha256::digest(bytes)[..16])))
    }

    /// The weak tag of `req`'s answer by `actor` from a read model at `position`.
    pub fn of_read(position: i64, req: &HttpRequest, actor: &Actor) -> Self {
        let mut digest = Sha256::new()
            .chain_update(b"bountyline/read/v1\0")
            .chain_update(req.path().as_bytes())
            .chain_update([0])
            .chain_update(req.query_string().as_bytes())
            .chain_update([0])
            .chain_update(actor.user_id.as_bytes());
        for role in &actor.roles {
            digest.update([0]);
            digest.update(role.as_str().as_bytes());
        }
        ETag(format!(
            "W/\"{position}-{}\"",
            to_hex(&digest.finalize()[..12])
        ))
    }

    /// The weak tag of `req`'s answer by `actor` from `projection` as stored now: read before
    /// the read model's rows.
    pub async fn of_projection(
        pool: &PgPool,
        projection: &str,
        req: &HttpRequest,
        actor: &Actor,
    ) -> ApiResult<Self> {
        let position = bountyline_projections::checkpoint::read(pool, projection).await?;
        Ok(Self::of_read(position, req, actor))
    }

    /// The answer to an authenticated read with no version to tag it by (an account, a
    /// wallet's balances, figures that move with the clock): tagged by a digest of its JSON,
    /// weak so that it is never mistaken for a version (If-Match refuses it).
    pub fn answer_by_content(req: &HttpRequest, body: &impl Serialize) -> ApiResult<HttpResponse> {
        let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
        let tag = ETag(format!("W/\"{}\"", to_hex(&Sha256::digest(&bytes)[..16])));
        Ok(tag.unchanged(req).unwrap_or_else(|| {
            tag.ok()
                .content_type(header::ContentType::json())
                .body(bytes)
        }))
    }

    /// The tag without `W/` and the quotes: what a weak comparison compares.
    fn opaque(&self) -> &str {
        opaque(&self.0)
    }

    /// Whether `req`'s `If-None-Match` names this tag (weak comparison, RFC 9110 8.8.3.2) or
    /// is `*`. A malformed value names nothing.
    pub fn matches(&self, req: &HttpRequest) -> bool {
        req.headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|t| t == "*" || (is_tag(t) && opaque(t) == self.opaque()))
    }

    /// 304 with this tag if `req` already holds it, for an authenticated read.
    pub fn unchanged(&self, req: &HttpRequest) -> Option<HttpResponse> {
        self.unchanged_as(req, PRIVATE)
    }

    /// 304 with this tag and `cache_control` if `req` already holds it.
    pub fn unchanged_as(&self, req: &HttpRequest, cache_control: &str) -> Option<HttpResponse> {
        self.matches(req).then(|| {
            let mut res = HttpResponse::NotModified();
            self.headers(&mut res, cache_control);
            res.finish()
        })
    }

    /// A 200 with this tag, for an authenticated read; the caller adds the body.
    pub fn ok(&self) -> HttpResponseBuilder {
        let mut res = HttpResponse::Ok();
        self.headers(&mut res, PRIVATE);
        res
    }

    /// The answer to an authenticated read of `body` under this tag: 304 if `req` holds it
    /// already, else 200 with the JSON.
    pub fn answer(&self, req: &HttpRequest, body: &impl Serialize) -> HttpResponse {
        self.unchanged(req).unwrap_or_else(|| self.ok().json(body))
    }

    fn headers(&self, res: &mut HttpResponseBuilder, cache_control: &str) {
        res.insert_header((header::ETAG, self.0.as_str()))
            .insert_header((header::CACHE_CONTROL, cache_control));
        if cache_control.starts_with("private") {
            // A browser shared by two users must not answer one's request with the other's
            // copy, nor revalidate one's copy on the other's behalf.
            res.append_header((header::VARY, HeaderValue::from_static("Authorization")));
        }
    }
}

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entity tag as RFC 9110 8.8.3 writes it: `"..."` or `W/"..."`, no quote inside.
fn is_tag(t: &str) -> bool {
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.len() >= 2 && t.starts_with('"') && t.ends_with('"') && !t[1..t.len() - 1].contains('"')
}

fn opaque(t: &str) -> &str {
    t.strip_prefix("W/").unwrap_or(t).trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn with(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, value))
            .to_http_request()
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists() {
        let tag = ETag::version(3);
        assert!(tag.matches(&with("\"3\"")));
        assert!(tag.matches(&with("W/\"3\"")), "weak comparison");
        assert!(tag.matches(&with("\"1\", \"3\"")));
        assert!(tag.matches(&with("*")));
        assert!(!tag.matches(&with("\"4\"")));
        assert!(!tag.matches(&with("3")), "not a tag");
        assert!(!tag.matches(&TestRequest::default().to_http_request()));
    }

    #[test]
    fn a_read_is_tagged_by_its_position_its_query_and_its_caller() {
        let me = Actor::new(uuid::Uuid::now_v7(), Vec::new());
        let other = Actor::new(uuid::Uuid::now_v7(), Vec::new());
        let at = |uri: &str| TestRequest::get().uri(uri).to_http_request();
        let tag = ETag::of_read(7, &at("/v1/tasks?status=queued"), &me);
        assert_eq!(tag, ETag::of_read(7, &at("/v1/tasks?status=queued"), &me));
        assert!(tag.0.starts_with("W/\"7-"));
        assert_ne!(tag, ETag::of_read(8, &at("/v1/tasks?status=queued"), &me));
        assert_ne!(tag, ETag::of_read(7, &at("/v1/tasks?status=claimed"), &me));
        assert_ne!(
            tag,
            ETag::of_read(7, &at("/v1/tasks?status=queued"), &other)
        );
    }
}
