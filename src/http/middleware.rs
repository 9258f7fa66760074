//! Per-request plumbing: a request id, minted here for every request, answered in
//! `X-Request-Id`, entered into the tracing span and recorded in event metadata as the request
//! and correlation id; the caller's own `X-Request-Id` (when sane) kept apart, echoed in
//! `X-Client-Request-Id` and recorded as `client_request_id`; the HTTP latency histogram by
//! route pattern and the `Server-Timing` header (handler, event store, read-model wait); and
//! headers copied out of the connection's read buffer, so that the requests actix keeps for
//! reuse do not keep those buffers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use std::time::Instant;

use crate::timing::Timings;
use tracing::Instrument;
use uuid::Uuid;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-client-request-id");
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The request's ids, available to handlers through request extensions.
///
/// Only the server's own id correlates events: a client-chosen one would let a user place
/// events in another user's correlation chain, which auditors follow.
#[derive(Debug, Clone)]
pub struct RequestId {
    /// Minted for this request, in time order (UUID version 7): the events' index on their
    /// correlation id then grows at its end rather than in a random page (migration 0019).
    pub id: String,
    /// The caller's `X-Request-Id`, when it sent a sane one.
    pub client: Option<String>,
}

fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    own_headers(&mut req);
    let client = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned);
    let id = Uuid::now_v7().to_string();
    req.extensions_mut().insert(RequestId {
        id: id.clone(),
        client: client.clone(),
    });
    let method = req.method().to_string();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("http", request_id = %id, client_request_id = client.as_deref().unwrap_or(""), %method, %route);
    let started = Instant::now();
    let (result, timings) = crate::timing::measured(next.call(req).instrument(span.clone())).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    metrics::histogram!("bountyline_http_request_duration_seconds",
        "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
    .record(elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms = elapsed * 1e3, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms = elapsed * 1e3, "request done");
        }
    });
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(value) = client.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().insert(CLIENT_REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&server_timing(elapsed, timings)) {
        res.headers_mut().insert(SERVER_TIMING, value);
    }
    Ok(res)
}

/// `Server-Timing` (W3C): the whole handling until the response's head, the part of it spent in
/// the event store, and the part spent waiting for a read model, in milliseconds.
fn server_timing(handler_seconds: f64, timings: Timings) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    format!(
        "handler;dur={:.1}, store;dur={:.1}, read-model;dur={:.1}",
        handler_seconds * 1e3,
        ms(timings.store),
        ms(timings.read_model)
    )
}

/// Replaces the request's headers with owned copies in a map sized to fit.
///
/// actix keeps up to 128 finished requests per worker thread, and as many request heads, for
/// reuse, headers and all; the parsed header values are slices of the 8 KiB buffer the
/// connection read them into, so every kept request held on to a whole buffer and a map with
/// room for 16 headers. After one burst of a few hundred concurrent requests the pools were full
/// and the API kept ~9 MiB more for good (`malloc_stats` and heaptrack after a burst of 1,500
/// reads; docs/HELD-LOAD.md). A copy costs one small allocation per header.
fn own_headers(req: &mut ServiceRequest) {
    let headers = req.headers_mut();
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        owned.append(name.clone(), copy);
    }
    *headers = owned;
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn owned_headers_keep_every_value_in_order() {
        let mut req = TestRequest::default()
            .append_header(("accept", "application/json"))
            .append_header(("accept", "text/plain"))
            .append_header(("x-request-id", "abc-1"))
            .to_srv_request();
        own_headers(&mut req);
        let accept: Vec<_> = req.headers().get_all("accept").collect();
        assert_eq!(accept, ["application/json", "text/plain"]);
        assert_eq!(req.headers().get(&REQUEST_ID).unwrap(), "abc-1");
        assert_eq!(req.headers().len(), 3);
    }
}
