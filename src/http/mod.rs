//! The HTTP edge: routes, extractors, errors as problem+json, idempotency and read-your-writes.

pub mod batched;
pub mod canonical;
pub mod command;
pub mod conditional;
pub mod consistency;
pub mod error;
pub mod extract;
pub mod guard;
pub mod idempotency;
pub mod limits;
pub mod login_throttle;
pub mod middleware;
pub mod openapi;
pub mod paging;
pub mod read_cache;
pub mod refusals;
pub mod routes;
pub mod sealing;
pub mod signature;
pub mod whole;

use actix_web::{web, HttpRequest, HttpResponse};

use error::{problem_response, ApiError};

/// Everything the API serves, with its extractor configuration.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(extract::json_config(body_limit))
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .app_data(web::PayloadConfig::new(body_limit))
        .configure(routes::config)
        .default_service(web::to(not_found));
}

/// No route matched: a known path with another method is a 405 naming the methods it has;
/// anything else is a 404.
async fn not_found(req: HttpRequest) -> HttpResponse {
    let allowed = req
        .app_data::<web::Data<openapi::Document>>()
        .map(|doc| doc.methods_for(req.path()))
        .unwrap_or_default();
    if !allowed.is_empty() {
        let detail = format!("{} is not served on {}", req.method(), req.path());
        let mut res = problem_response(&ApiError::MethodNotAllowed(detail));
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
            res.headers_mut()
                .insert(actix_web::http::header::ALLOW, value);
        }
        return res;
    }
    let detail = format!("no route answers {} {}", req.method(), req.path());
    problem_response(&ApiError::NoSuchRoute(detail))
}
