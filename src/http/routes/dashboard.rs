//! `GET /dashboard`: the live dashboard, a static page (HTML, vanilla JS, CSS) embedded in the
//! binary, that reads the API and its SSE streams from the browser with the user's own token.
//!
//! Every file is answered with `Cache-Control: no-cache` and a strong ETag, so a browser
//! revalidates cheaply and never runs a stale script after an upgrade. The Content-Security-
//! Policy allows only this origin: no inline script or style, no CDN, no framing.

use actix_web::http::header::{self, CacheControl, CacheDirective, EntityTag};
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use crate::http::error::{problem_response, ApiError};
use crate::http::openapi::problems::NotFound;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../dashboard/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../dashboard/app.js"),
    },
    // The typed client (clients/typescript), built by `scripts/client generate`; app.js
    // imports it.
    Asset {
        path: "bountyline.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../clients/typescript/dist/bountyline.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../dashboard/style.css"),
    },
    Asset {
        path: "icon.svg",
        content_type: "image/svg+xml; charset=utf-8",
        body: include_bytes!("../dashboard/icon.svg"),
    },
];

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(page))
        .route("/dashboard/", web::get().to(page_slash))
        .route("/dashboard/{file}", web::get().to(file));
}

/// The live dashboard: sign in (or pass `#token=`), then watch the figures, queues, newest
/// bounties and, for auditors, every event as it happens.
#[utoipa::path(
    get, path = "/dashboard", operation_id = "dashboard", tag = "dashboard",
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8",
            body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ),
)]
async fn page(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

/// The page's address with a trailing slash.
#[utoipa::path(
    get, path = "/dashboard/", operation_id = "dashboardSlash", tag = "dashboard",
    responses((status = 308, description = "Redirects to `/dashboard`",
        headers(("Location" = String, description = "`/dashboard`")))),
)]
async fn page_slash() -> impl Responder {
    web::Redirect::to("/dashboard").permanent()
}

/// One of the page's files: `app.js`, `style.css`, `icon.svg`.
#[utoipa::path(
    get, path = "/dashboard/{file}", operation_id = "dashboardFile", tag = "dashboard",
    params(("file" = String, Path, description = "`app.js`, `style.css` or `icon.svg`")),
    responses(
        (status = 200, description = "The file, with its media type", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        NotFound,
    ),
)]
async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    serve(&req, &name)
}

fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let Some((index, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == name) else {
        return problem_response(&ApiError::NotFound(format!(
            "no dashboard file named {name}"
        )));
    };
    let tag = EntityTag::new_strong(etags()[index].clone());
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == tag.to_string() || t.trim() == "*")
        });
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header(header::ETag(tag))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Stream URLs carry the access token in their query: never let it leak as a referrer.
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if unchanged {
        return res.finish();
    }
    res.insert_header((header::CONTENT_TYPE, asset.content_type))
        .body(asset.body)
}

/// Each asset's ETag: a hash of its bytes, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                crate::http::signature::to_hex(&digest[..12])
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::dev::ServiceResponse;
    use actix_web::http::header::HeaderName;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    fn header(res: &ServiceResponse, name: HeaderName) -> String {
        res.headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[actix_web::test]
    async fn the_page_is_served_with_its_policy_and_revalidates_by_etag() {
        let app = init_service(App::new().configure(config)).await;
        let res = call_service(&app, TestRequest::get().uri("/dashboard").to_request()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            header(&res, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header(&res, header::CACHE_CONTROL), "no-cache");
        assert!(header(&res, header::CONTENT_SECURITY_POLICY).starts_with("default-src 'self'"));
        let etag = header(&res, header::ETAG);

        let again = TestRequest::get()
            .uri("/dashboard")
            .insert_header((header::IF_NONE_MATCH, etag))
            .to_request();
        assert_eq!(call_service(&app, again).await.status(), 304);
        let slash = TestRequest::get().uri("/dashboard/").to_request();
        let res = call_service(&app, slash).await;
        assert_eq!(res.status(), 308);
        assert_eq!(header(&res, header::LOCATION), "/dashboard");
    }

    #[actix_web::test]
    async fn assets_have_their_types_and_unknown_files_are_not_found() {
        let app = init_service(App::new().configure(config)).await;
        for (uri, kind) in [
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/style.css", "text/css; charset=utf-8"),
        ] {
            let res = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
            assert_eq!(res.status(), 200, "{uri}");
            assert_eq!(header(&res, header::CONTENT_TYPE), kind, "{uri}");
        }
        let res = call_service(
            &app,
            TestRequest::get()
                .uri("/dashboard/..%2fCargo.toml")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 404);
    }
}
