//! The API's own description: the OpenAPI document at `/openapi.json` and Swagger UI at
//! `/docs/`, from assets compiled into the binary (nothing is fetched at build or run time).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::http::openapi::params::IfNoneMatch;
use crate::http::openapi::problems::NotModified;
use crate::http::openapi::Document;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .route("/docs", web::get().to(swagger_ui))
        // Swagger UI's page and assets, `/docs/` and `/docs/<file>`; not in the document.
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/openapi.json"])));
}

/// What anyone may cache of this document: it changes only with a deployment, so a minute's
/// reuse without asking, then a revalidation by its ETag.
const DOCUMENT_CACHE: &str = "public, max-age=60";

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi", tag = "docs",
    params(IfNoneMatch),
    responses((status = 200, description = "The OpenAPI 3.1 document",
        content_type = "application/json", body = Object), NotModified),
)]
async fn openapi_json(req: HttpRequest, document: web::Data<Document>) -> HttpResponse {
    let tag = document.etag();
    if let Some(unchanged) = tag.unchanged_as(&req, DOCUMENT_CACHE) {
        return unchanged;
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, tag.to_string()))
        .insert_header((header::CACHE_CONTROL, DOCUMENT_CACHE))
        .body(document.bytes())
}

/// Swagger UI over this document; its page is `/docs/`.
#[utoipa::path(
    get, path = "/docs", operation_id = "swaggerUi", tag = "docs",
    responses((status = 308, description = "Redirects to `/docs/`, Swagger UI's page",
        headers(("Location" = String, description = "`/docs/`")))),
)]
async fn swagger_ui() -> impl Responder {
    web::Redirect::to("/docs/").permanent()
}
