//! The API's own description: the OpenAPI document at `/openapi.json` and Swagger UI at
//! `/docs/`, from assets compiled into the binary (nothing is fetched at build or run time).

use actix_web::{web, HttpResponse, Responder};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::http::openapi::Document;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json))
        .route("/docs", web::get().to(swagger_ui))
        // Swagger UI's page and assets, `/docs/` and `/docs/<file>`; not in the document.
        .service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/openapi.json"])));
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "openapi", tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document",
        content_type = "application/json", body = Object)),
)]
async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
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
