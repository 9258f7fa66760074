//! Bodies over the configured limit are refused with a 413 problem+json however the route
//! reads them: as `web::Json`, or as raw bytes it parses itself (optional bodies, the signed
//! webhook).

mod common;

use common::TestApp;
use reqwest::{header, StatusCode};
use serde_json::Value;
use uuid::Uuid;

#[tokio::test]
async fn a_body_over_the_limit_is_refused_as_a_problem_however_the_route_reads_it() {
    let app = TestApp::spawn().await;
    let user = app.user("big-body").await;
    let too_big = vec![b' '; app.settings.http.body_limit_bytes + 1];
    let heartbeat = format!("/v1/tasks/{}/heartbeat", Uuid::new_v4());
    // A `web::Json` body, an optional body, and the webhook's raw body (read before its
    // signature is checked).
    for path in ["/v1/tasks", heartbeat.as_str(), "/v1/webhooks/payments"] {
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(&user.access_token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(too_big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{path}"
        );
        let problem: Value = res.json().await.unwrap();
        assert_eq!(
            problem["type"], "https://bountyline.dev/problems/payload-too-large",
            "{path}"
        );
    }
}
